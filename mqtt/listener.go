package mqtt

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
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

// track registers an open connection; false once shutdown began.
func (s *connSet) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
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
	ln   net.Listener
	http *http.Server // websocket only
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
			b.establish(l.cfg.ID, conn)
		}()
	}
}

// serveWebsocket serves HTTP upgrade requests until l.http is closed.
func (b *Broker) serveWebsocket(l *boundListener) {
	if err := l.http.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		b.log.Warn("websocket listener stopped", "listener", l.cfg.ID, "err", err)
	}
}

func (b *Broker) websocketServer(id string) *http.Server {
	up := &websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Devices are not browsers; authentication, not Origin, guards the
		// broker.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.conns.enter() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		defer b.conns.leave()
		ws, err := up.Upgrade(w, r, nil) // writes the error response itself
		if err != nil {
			b.log.Debug("websocket upgrade failed", "listener", id, "remote", r.RemoteAddr, "err", err)
			return
		}
		b.establish(id, &wsConn{Conn: ws.NetConn(), ws: ws})
	})
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: connectTimeout,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
}

// establish runs one client connection until it ends.
func (b *Broker) establish(listener string, conn net.Conn) {
	if !b.conns.track(conn) {
		_ = conn.Close()
		return
	}
	defer b.conns.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	err := b.srv.EstablishConnection(listener, conn)
	b.log.Debug("connection closed", "listener", listener, "remote", conn.RemoteAddr().String(), "err", err)
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
