// Package certtest is test support: a throwaway PKI for tests that need TLS.
// NewCA makes a certificate authority; Issue signs server or client
// certificates from a template (Server, Client) and writes certificates and
// keys as PEM files in the test's temporary directory, for configurations
// that name files.
//
// certtest imports only the standard library; it must not import any
// edgegate package. Only _test.go files may import it
// (gateway/layout_test.go enforces that). Concurrency: a CA may issue from
// several goroutines; everything else is built once and then read only.
package certtest
