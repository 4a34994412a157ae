// Package testpki is test support: certificate authorities and the server
// and client certificates they sign, generated for one test (P-256 keys,
// valid from an hour ago for a day) and written as PEM files in the test's
// temporary directory, for every test that needs TLS: uplinks with client
// certificates, the admin endpoint over HTTPS, TLS listeners.
//
// A server certificate is for 127.0.0.1, ::1 and localhost (plus the names
// a test adds), so clients verify it against the CA's pool without
// InsecureSkipVerify.
//
// testpki imports only the standard library and must not import any
// edgegate package, so the tests of any package may use it; only _test.go
// files may import it (gateway/layout_test.go enforces that).
//
// Concurrency: a CA may issue certificates from several goroutines; its
// fields do not change after NewCA.
package testpki
