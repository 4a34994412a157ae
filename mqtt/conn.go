package mqtt

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// largePacket is the remaining length above which reading a packet first
// reserves memory from the broker's packet budget: mochi allocates a packet's
// whole length (twice: the read buffer and a copy to decode) as soon as it
// has read the fixed header, so without a budget a thousand clients that
// each announce a 1 MiB packet and then trickle it would pin 2 GiB.
const largePacket = 32 << 10

// budgetWait bounds how long a connection waits for packet budget before
// it is closed (its client reconnects and resends).
const budgetWait = 10 * time.Second

// minPacketBudget is the smallest packet budget (see Broker.budget).
const minPacketBudget = 64 << 20

// clientConn is the connection mochi reads one device through. It carries
// the connection's own state (its verified client certificate, its publish
// rate bucket) and follows MQTT's framing to reserve memory for a large
// packet before mochi sees the end of its fixed header.
//
// Read and every field but ctx and closing run on the connection's read
// goroutine (mochi's read loop, inside EstablishConnection): mochi's hooks
// for this client run there too. Close and the deadline setters may be
// called from any goroutine.
type clientConn struct {
	net.Conn
	b      *Broker
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	peer     *x509.Certificate // verified client certificate; nil if none
	identity string            // the listener's tls.identity

	lim         *rate.Limiter // publish rate; nil when off
	limChecked  bool          // lim was checked against the exempt identities
	excessSince time.Time     // start of the current run over the rate; zero when under it
	// waited is how long Read has waited for the client since its last
	// message over the rate: the client's own pauses (see limitRate).
	waited time.Duration

	// The fair share (fairshare.go): pubs counts the device publishes
	// read, slowed those held back to the share (read by LimitIntake from
	// any goroutine); fair is the share's token bucket, nil until the
	// broker first limits its intake.
	pubs, slowed atomic.Int64
	fair         *rate.Limiter

	stage int   // 0: a fixed header's first byte comes next; 1-4: in its remaining length
	rem   int   // remaining length decoded so far
	mult  int   // weight of the next remaining-length byte
	body  int   // bytes of the current packet's body not yet passed to mochi
	lost  bool  // malformed remaining length: mochi closes the connection, stop following
	held  int64 // packet budget held for the current or last large packet
	done  bool  // the last packet was passed whole: its budget goes at the next Read

	// raw is the TCP connection under Conn (Conn itself, or under its TLS)
	// for a half-close and the drain after it; nil for websockets.
	raw     net.Conn
	closing atomic.Bool // Close half-closed raw: reads stay timed out
}

// Read passes bytes on to mochi; before it passes the byte that completes
// the fixed header of a large packet it waits for that packet's budget,
// and it returns the budget of the previous packet once mochi asks for
// more (mochi handles a packet before it reads the next).
func (c *clientConn) Read(p []byte) (int, error) {
	if c.done {
		c.done = false
		c.release()
	}
	start := time.Now()
	n, err := c.Conn.Read(p)
	c.waited += time.Since(start)
	if n > 0 && !c.lost {
		if rerr := c.follow(p[:n]); rerr != nil {
			return 0, rerr
		}
	}
	return n, err
}

// follow advances the framing over p, reserving budget where a large
// packet's header ends.
func (c *clientConn) follow(p []byte) error {
	for i := 0; i < len(p); {
		if c.body > 0 {
			k := min(c.body, len(p)-i)
			c.body -= k
			i += k
			c.done = c.body == 0
			continue
		}
		v := p[i]
		i++
		if c.stage == 0 {
			c.stage, c.rem, c.mult = 1, 0, 1
			continue
		}
		c.rem += int(v&0x7f) * c.mult
		c.mult <<= 7
		if v&0x80 != 0 {
			if c.stage == 4 {
				c.lost = true // mochi refuses a fifth length byte
				return nil
			}
			c.stage++
			continue
		}
		c.stage, c.body = 0, c.rem
		c.done = c.rem == 0
		if c.rem > largePacket && c.rem < int(c.b.maxPacket) { // larger: mochi refuses it unread
			if err := c.reserve(2 * int64(c.rem)); err != nil {
				return err
			}
		}
	}
	return nil
}

// reserve waits up to budgetWait for n bytes of packet budget, returning
// what the connection held first.
func (c *clientConn) reserve(n int64) error {
	c.release()
	ctx, cancel := context.WithTimeout(c.ctx, budgetWait)
	defer cancel()
	if err := c.b.budget.Acquire(ctx, n); err != nil {
		if c.ctx.Err() == nil {
			c.b.m.budgetTimeouts.Inc()
			c.b.logs.budget.Log("remote", c.RemoteAddr().String(), "packet_bytes", n/2, "waited", budgetWait)
		}
		return fmt.Errorf("wait for memory to read a %d-byte packet: %w", n/2, err)
	}
	c.held = n
	return nil
}

// release returns the budget held. Called on the read goroutine, and once
// more after the read loop has ended.
func (c *clientConn) release() {
	if c.held > 0 {
		c.b.budget.Release(c.held)
		c.held = 0
	}
}

// lingerTime and lingerBytes bound how long and how much a connection the
// broker closed drains of what its client still sends.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 1 << 20
)

// closeWriter is a connection that can be half-closed (TCP, TLS over TCP).
type closeWriter interface{ CloseWrite() error }

// Close cancels a wait for budget and ends the connection's sending side
// (TCP FIN after everything written, e.g. a DISCONNECT), then makes mochi's
// read return at once (a read deadline in the past, on the socket: no
// deadline mochi sets afterwards moves it); linger drains and closes the
// connection once mochi is done with it. Closing at once while the client
// is still sending would answer its next bytes with a reset, which can
// destroy what the client has not read yet (mochi's DISCONNECT 0x93 to a
// client over its receive maximum, for one). Connections that cannot be
// half-closed (websockets) close at once.
func (c *clientConn) Close() error {
	c.cancel()
	if cw, ok := c.Conn.(closeWriter); ok && c.raw != nil && cw.CloseWrite() == nil {
		c.closing.Store(true)
		return c.raw.SetReadDeadline(time.Now())
	}
	return c.Conn.Close()
}

// SetDeadline is the connection's, except that after Close reads stay
// timed out (mochi refreshes the deadline before each packet it reads).
// closing is read after the deadline is set, so a Close between the two
// still wins.
func (c *clientConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	if c.closing.Load() {
		return c.raw.SetReadDeadline(time.Now())
	}
	return err
}

// SetReadDeadline: see SetDeadline.
func (c *clientConn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	if c.closing.Load() {
		return c.raw.SetReadDeadline(time.Now())
	}
	return err
}

// linger runs after mochi is done with the connection: it reads and
// discards, from the socket under any TLS, what the client still sends
// until it closes its side, for at most lingerTime and lingerBytes, then
// closes the connection.
func (c *clientConn) linger() {
	defer c.Conn.Close()
	if c.raw == nil || !c.closing.Load() {
		return
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.raw, lingerBytes)
}
