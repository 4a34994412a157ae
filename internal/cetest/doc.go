// Package cetest is test support: one strict CloudEvents HTTP receiver for
// every test that needs one. A Server is an httptest server running an
// internal/receiver Handler in strict mode (MUST and SHOULD violations of
// CloudEvents 1.0 are refused with 400, recorded and reported with
// tb.Errorf); it decodes what it accepts with sdk-go and records every
// event, both as an sdk-go event.Event and as the validator read it
// (ceconform.Event), so tests can compare either with what was sent. Tests
// choose its answers (Respond, RejectIf, Refuse) and wait for events
// (WaitFor).
//
// cetest imports internal/receiver and internal/ceconform and must not
// import any other edgegate package, so the tests of any package may use
// it; only _test.go files may import it (gateway/layout_test.go enforces
// that). A Server is
// safe for concurrent use; its hooks run on the server's goroutines.
package cetest
