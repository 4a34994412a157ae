package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Our listeners bind in Run (so a bind error is returned, naming the
// listener) and hand accepted connections to mochi's EstablishConnection.
// mochi's own listeners are not used: its websocket listener binds inside
// Serve and only logs a bind error, none of them waits for its connection
// goroutines, and a connection that never sends CONNECT has no deadline.

// connectTimeout bounds the time from accept to a complete CONNECT packet;
// mochi replaces the deadline with 1.5 × keepalive once connected.
const connectTimeout = 10 * time.Second

// shutdownGrace bounds the polite DISCONNECT round at shutdown before every
// connection is closed.
const shutdownGrace = 2 * time.Second

// connSet tracks every connection goroutine (enter/leave) and every open
// connection (track/untrack), so that shutdown can close them all and wait.
type connSet struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// enter registers a connection goroutine; false once shutdown began.
func (s *connSet) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *connSet) leave() { s.wg.Done() }

var errTooManyConns = errors.New("too many connections")

// track registers an open connection unless max are open already
// (errTooManyConns) or shutdown began (net.ErrClosed).
func (s *connSet) track(c net.Conn, max int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return net.ErrClosed
	case len(s.conns) >= max:
		return errTooManyConns
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	return nil
}

func (s *connSet) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// shut refuses new connections from now on.
func (s *connSet) shut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

// closeAll closes every tracked connection, which ends its read loop.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
}

// wait returns when every connection goroutine has left.
func (s *connSet) wait() { s.wg.Wait() }

// boundListener is one bound ListenerConfig.
type boundListener struct {
	cfg  ListenerConfig
	ln   net.Listener // for tls: the TCP listener; the handshake runs in establish
	tls  *tls.Config  // tls and wss only
	http *http.Server // websocket and wss only
}

// serveTCP accepts until ln is closed.
func (b *Broker) serveTCP(l *boundListener) {
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// e.g. EMFILE: back off like net/http instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			b.log.Warn("accept failed", "listener", l.cfg.ID, "err", err, "retry_in", delay)
			select {
			case <-b.stop:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		if !b.conns.enter() {
			_ = conn.Close()
			return
		}
		go func() {
			defer b.conns.leave()
			b.establish(l, conn, nil)
		}()
	}
}

// serveWebsocket serves HTTP upgrade requests until l.http is closed.
func (b *Broker) serveWebsocket(l *boundListener) {
	ln := l.ln
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	if err := l.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		b.log.Warn("websocket listener stopped", "listener", l.cfg.ID, "err", err)
	}
}

func (b *Broker) websocketServer(l *boundListener) *http.Server {
	up := &websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		CheckOrigin:  b.originCheck(l.cfg),
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.conns.enter() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		defer b.conns.leave()
		ws, err := up.Upgrade(w, r, nil) // writes the error response itself
		if err != nil {
			b.log.Debug("websocket upgrade failed", "listener", l.cfg.ID, "remote", r.RemoteAddr, "err", err)
			return
		}
		b.establish(l, &wsConn{Conn: ws.NetConn(), ws: ws}, r.TLS)
	})
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: connectTimeout,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
}

// originCheck accepts an upgrade request without an Origin header (a
// device), else one whose Origin is in l.AllowedOrigins ("*": any) or, with
// none configured, whose Origin host equals the request's Host.
func (b *Broker) originCheck(l ListenerConfig) func(*http.Request) bool {
	allowed := make(map[string]bool, len(l.AllowedOrigins))
	for _, o := range l.AllowedOrigins {
		allowed[normalOrigin(o)] = true
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		ok := allowed["*"] || allowed[normalOrigin(origin)]
		if len(allowed) == 0 {
			u, err := url.Parse(origin)
			ok = err == nil && strings.EqualFold(u.Host, r.Host)
		}
		if !ok {
			b.m.refusedOrigin.Inc()
			b.logs.origin.Log("listener", l.ID, "remote", r.RemoteAddr, "origin", origin, "host", r.Host)
		}
		return ok
	}
}

// normalOrigin lower-cases an origin and drops a trailing slash.
func normalOrigin(o string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
}

// validateOrigins checks allowed_origins: only for websocket listeners,
// each "*" or scheme://host[:port].
func (l ListenerConfig) validateOrigins(errs *yamlconf.List, at yamlconf.Path) {
	if len(l.AllowedOrigins) == 0 {
		return
	}
	if l.Type != TypeWebsocket && l.Type != TypeWSS {
		errs.Add(at.Key("allowed_origins"), "is only for websocket and wss listeners")
		return
	}
	for i, o := range l.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs.Add(at.Key("allowed_origins").Index(i), "%q must be \"*\" or an origin such as https://dash.example.com (scheme, host, optional port; no path)", o)
		}
	}
}

// establish runs one client connection until it ends: counted against
// max_connections, its TLS handshake completed (tls listeners; wss ones
// arrive with state, the HTTP server's completed handshake), then handed
// to mochi.
func (b *Broker) establish(l *boundListener, conn net.Conn, state *tls.ConnectionState) {
	remote := conn.RemoteAddr().String()
	if err := b.conns.track(conn, b.cfg.Limits.MaxConnections); err != nil {
		if errors.Is(err, errTooManyConns) {
			b.m.refusedMaxConns.Inc()
			b.logs.maxConns.Log("listener", l.cfg.ID, "remote", remote, "max_connections", b.cfg.Limits.MaxConnections)
		}
		_ = conn.Close()
		return
	}
	defer b.conns.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	raw := conn
	if l.cfg.Type == TypeTLS {
		tc := tls.Server(conn, l.tls)
		if err := tc.Handshake(); err != nil {
			b.m.refusedHandshake.Inc()
			b.logs.handshake.Log("listener", l.cfg.ID, "remote", remote, "err", err)
			_ = conn.Close()
			return
		}
		st := tc.ConnectionState()
		conn, state = tc, &st
	}
	ctx, cancel := context.WithCancel(context.Background())
	cc := &clientConn{Conn: conn, b: b, ctx: ctx, cancel: cancel}
	if _, ws := conn.(*wsConn); !ws {
		cc.raw = raw
	}
	if state != nil && l.cfg.TLS != nil {
		cc.peer = verifiedLeaf(*state)
		cc.identity = l.cfg.TLS.Identity
	}
	if r := b.cfg.Limits.PublishRate; r > 0 {
		cc.lim = rate.NewLimiter(rate.Limit(r), b.cfg.Limits.PublishBurst)
	}
	b.fair.add(cc)
	err := b.srv.EstablishConnection(l.cfg.ID, cc)
	b.fair.remove(cc)
	cancel()
	cc.release()
	cc.linger()
	b.log.Debug("connection closed", "listener", l.cfg.ID, "remote", remote, "err", err)
}

// wsConn presents a websocket connection as the byte stream mochi reads:
// binary messages concatenated; each Write is one binary message. Deadlines
// and addresses are those of the underlying connection.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // current message, nil between messages
}

var errNotBinary = errors.New("websocket message is not binary")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write is serialised by mochi (it holds the client lock while writing).
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
