// Package certfile owns a TLS certificate and its private key read from PEM
// files and re-read when either file changes, so a renewed certificate is
// served (or presented) without a restart, and the CA bundles that verify
// peers (LoadCAs). Load reads a pair once and Check checks the settings of
// one; Open keeps one current for a tls.Config, as a server's GetCertificate or a
// client's GetClientCertificate.
//
// Every file is checked at most every Recheck, lazily, during handshakes:
// no goroutine, no file watcher. A new pair that cannot be used (a half
// written file, a key that does not match) is ignored in favour of the last
// good one, with one warning until it is fixed. Errors name the field
// (cert_file or key_file, relative to the tls section that holds them, as
// *yamlconf.Error) and the file, never key material.
//
// certfile imports only internal/yamlconf of edgegate: it must not import
// any other edgegate package, so every package that serves or presents a
// certificate (uplink, gateway's admin endpoint, mqtt's listeners) may use
// it.
//
// Concurrency: a *Pair is safe for concurrent use; handshakes share one
// mutex, held for a stat of each file at most every Recheck and for a
// reload when the files changed.
package certfile
