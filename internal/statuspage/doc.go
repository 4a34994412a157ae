// Package statuspage owns the gateway's live status page: one page of
// plain HTML, CSS and JavaScript embedded in the binary (no CDN, no
// external fonts: a gateway may have no internet), served on the admin
// port for a phone or a laptop.
//
// The page is static and holds no data: Handler serves it to anyone who
// reaches the admin port. It reads everything it shows from the admin API
// with the bearer token of admin.tokens, which it asks for when the API
// answers 401 and keeps in the tab's sessionStorage (gone when the tab
// closes; never in a cookie, so another site cannot make the browser use
// it: no CSRF): GET /status every 2 s while the page is visible, and the
// live tail GET /v1/events, read with fetch as a stream so that it too
// carries the Authorization header (EventSource cannot send one, and a
// token in the URL would end up in histories and proxy logs).
//
// Handler sets a Content-Security-Policy that allows only the page's own
// files and requests to its own origin, and forbids framing.
//
// statuspage imports no edgegate package. It holds no state: Handler is
// safe for concurrent use.
package statuspage
