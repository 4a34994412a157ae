// Package browsertest is test support: a real headless Chromium (Debian's
// chromium, which scripts/ensure-chromium.sh installs for `make test`)
// driven over the DevTools protocol by chromedp, for the tests of the
// status page.
//
// New starts a browser for one test, in a fresh profile, with a phone-sized
// window, and fails the test on any uncaught JavaScript exception and on
// any request the page makes outside the origins it was given (the page
// must work without internet). Without a browser the test is skipped,
// unless EDGEGATE_REQUIRE_BROWSER=1 (the Makefile's test target sets it),
// which makes it fail instead: CI never skips it silently.
//
// browsertest imports no edgegate package; only _test.go files may import
// it (gateway/layout_test.go enforces that).
//
// Concurrency: a Browser belongs to one test goroutine; its checks of
// browser events run on chromedp's goroutines under a mutex.
package browsertest
