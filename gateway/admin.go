package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/edgegate/edgegate/internal/statuspage"
)

// serveAdmin serves the admin endpoint on g.adminLn (over TLS when
// admin.tls is set) until ctx is done:
//
//	/healthz  200 while the process runs                                  (open)
//	/readyz   200 while device intake is open (notReady), 503 with the
//	          reasons otherwise                                           (open)
//	/ui/      the status page: static files, no data                      (open)
//	/metrics  Prometheus text format
//	/status   JSON: readiness, config, devices, counters, buffer, uplinks,
//	          rules (never secrets)
//	/v1/uplinks  JSON: each uplink's health, backlog and oldest age
//	/v1/events   the live tail of stored events (Server-Sent Events)
//	POST /-/reload  reload the configuration file (as SIGHUP does);
//	                ?removed_backlog=drop drops removed uplinks' backlogs
//	/v1/buffer/...  the buffer tools (registerBufferRoutes)
//	/debug/pprof/   Go's profiles, while admin.pprof is true (404 otherwise)
//	/v1/config...   remote configuration (registerConfigRoutes)
//
// Every route but the open ones, and any path that matches no route, needs
// a bearer token of admin.tokens when tokens are set (adminHandler).
func (g *Gateway) serveAdmin(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := g.notReady(); len(why) > 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready:\n%s\n", strings.Join(why, "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /ui/", http.StripPrefix("/ui", statuspage.Handler()))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	mux.HandleFunc("GET /v1/uplinks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, g.uplinkStatuses(g.bufferStats(), time.Now()), nil)
	})
	mux.Handle("GET /v1/events", g.tail.Handler(ctx.Done()))
	mux.HandleFunc("GET /metrics", g.serveMetrics)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		maxClients := -1
		if v := r.URL.Query().Get("clients"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeJSON(w, nil, badRequest("clients: want the number of clients to list, 0 or more, not %q", v))
				return
			}
			maxClients = n
		}
		writeJSON(w, g.status(maxClients), nil)
	})
	mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, r *http.Request) {
		if g.configPath == "" {
			http.Error(w, "reload is not available: the gateway was not started from a file", http.StatusNotFound)
			return
		}
		var opts uplinkChange
		switch v := r.URL.Query().Get("removed_backlog"); v {
		case "", "keep":
		case "drop":
			opts.DropRemovedBacklog = true
		default:
			http.Error(w, fmt.Sprintf("removed_backlog: want keep or drop, not %q", v), http.StatusBadRequest)
			return
		}
		// A client that hangs up does not cut the uplinks' handoff short.
		if err := g.reload(context.WithoutCancel(r.Context()), g.configPath, opts); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Write([]byte("reloaded\n"))
	})
	g.registerBufferRoutes(mux)
	g.registerPprof(mux)
	g.registerConfigRoutes(mux)
	srv := &http.Server{
		Handler:           g.adminHandler(mux),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake errors of scanners and the like are not worth more.
		ErrorLog: slog.NewLogLogger(g.log.With("component", "admin").Handler(), slog.LevelDebug),
	}
	serve := func() error { return srv.Serve(g.adminLn) }
	if g.adminCert != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: g.adminCert.GetCertificate}
		if g.adminClientCAs != nil {
			// A certificate is optional (tokens still work); one that is
			// given must verify.
			srv.TLSConfig.ClientCAs, srv.TLSConfig.ClientAuth = g.adminClientCAs, tls.VerifyClientCertIfGiven
		}
		serve = func() error { return srv.ServeTLS(g.adminLn, "", "") }
	}
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	g.adminFailLog.Stop()
	g.adminAuth.Load().stop()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// registerPprof serves net/http/pprof's handlers under /debug/pprof/ while
// the current configuration's admin.pprof is true, so a reload turns them
// on and off; when it is false they answer 404 like an unknown path.
func (g *Gateway) registerPprof(mux *http.ServeMux) {
	on := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !g.current().Admin.PProf {
				http.NotFound(w, r)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /debug/pprof/", on(pprof.Index)) // and the named profiles: heap, allocs, goroutine, …
	mux.HandleFunc("GET /debug/pprof/cmdline", on(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", on(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", on(pprof.Symbol))
	mux.HandleFunc("POST /debug/pprof/symbol", on(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", on(pprof.Trace))
}

// openAdminRoute reports whether a route of the admin mux is open to
// requests without a token. Every other route, present or future, is
// authenticated.
func openAdminRoute(pattern string) bool {
	switch pattern {
	case "GET /healthz", "GET /readyz", "GET /ui/", "GET /{$}":
		return true
	}
	return false
}

// adminHandler puts authentication in front of mux: a request for an
// open route passes; any other needs "Authorization: Bearer <token>" with
// one of admin.tokens, when tokens are set. Problems are answered 401 with
// a WWW-Authenticate challenge, whether the token is missing, malformed or
// wrong (RFC 6750 §3.1: invalid_token is 401; 403 is for a valid token
// without enough scope, which admin tokens do not have), counted by reason
// and logged at most once per interval. Requests that change state (any
// method but GET and HEAD) are logged with the name of their token.
func (g *Gateway) adminHandler(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); openAdminRoute(pattern) {
			mux.ServeHTTP(w, r)
			return
		}
		name := ""
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			// A client certificate signed by admin.tls.client_ca_file.
			name = "cert:" + r.TLS.VerifiedChains[0][0].Subject.CommonName
		} else if auth := g.adminAuth.Load(); auth != nil || g.adminClientCAs != nil {
			token, problem := parseBearer(r.Header.Values("Authorization"))
			if problem == authOK && auth == nil {
				problem = authInvalid // no tokens: only a client certificate will do
			}
			if problem == authOK {
				var err error
				name, err = auth.check(r.Context(), []byte(token))
				switch {
				case errors.Is(err, errInvalidToken):
					problem = authInvalid
				case errors.Is(err, errAuthBusy):
					g.adminThrottled.Inc()
					w.Header().Set("Retry-After", "1")
					http.Error(w, "too many authentication attempts", http.StatusTooManyRequests)
					return
				case err != nil:
					return // the client went away
				}
			}
			if problem != authOK {
				g.refuseAdmin(w, r, problem)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if name == "" {
				name = "none (admin.tokens not set)"
			}
			g.log.Info("admin request", "component", "admin", "method", r.Method, "path", logPath(r),
				"token", name, "remote_addr", r.RemoteAddr)
		}
		mux.ServeHTTP(w, r)
	})
}

// refuseAdmin answers a request without a valid token.
func (g *Gateway) refuseAdmin(w http.ResponseWriter, r *http.Request, p authProblem) {
	g.adminAuthFailures[p.reason()].Inc()
	g.adminFailLog.Log("reason", p.reason(), "remote_addr", r.RemoteAddr, "method", r.Method, "path", logPath(r))
	w.Header().Set("WWW-Authenticate", p.challenge())
	http.Error(w, "unauthorized: this route needs Authorization: Bearer <token> (admin.tokens)", http.StatusUnauthorized)
}

// logPath is a request's path, cut to a length fit for a log line.
func logPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if len(p) > 128 {
		p = p[:128] + "…"
	}
	return p
}

// warnAdmin logs, at every start, what makes the admin endpoint weaker
// than it should be.
func (g *Gateway) warnAdmin() {
	a := g.cfg.Admin
	if a.Listen == "" || loopbackOnly(a.Listen) {
		return
	}
	log := g.log.With("component", "admin", "listen", a.Listen)
	switch {
	case !a.authRequired():
		log.Warn("admin API open without authentication beyond loopback (admin.allow_unauthenticated: true): " +
			"anyone who reaches it can read /metrics and /status and reload the configuration; set admin.tokens")
	case !a.TLS.enabled():
		log.Warn("admin tokens cross the network in clear text: set admin.tls")
	}
}
