package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgegate/edgegate/buffer"
)

// The gateway runs without its buffer while the buffer cannot be opened:
// the disk too full for Badger to open and compact safely, a damaged
// buffer, a directory it may not read. A gateway that exits instead is
// restarted by systemd into the same failure, over and over, and its
// devices cannot even connect. So devices connect, every event is refused
// (MQTT 5: PUBACK 0x97; 3.1.1: no PUBACK) and counted, /readyz answers 503
// with the reason, and Run tries to open the buffer again: every
// bufferRetry (Gateway.bufRetry) while the disk is short of space, backing
// off to bufferRetryMax otherwise (a damaged buffer needs `edgegate buffer
// repair`). Once it opens, the forwarders start and events are accepted.
const (
	bufferRetry    = 5 * time.Second
	bufferRetryMax = 5 * time.Minute
)

// ErrBufferUnavailable is what the buffer's admin routes answer (503) while
// the buffer is not open.
var ErrBufferUnavailable = errors.New("buffer unavailable")

// unavailable returns ErrBufferUnavailable with the reason.
func (g *Gateway) unavailable() error {
	if why := g.bufDown.Load(); why != nil {
		return fmt.Errorf("%w: %s", ErrBufferUnavailable, *why)
	}
	return ErrBufferUnavailable
}

// buffer returns the buffer, or nil while it is not open.
func (g *Gateway) buffer() *buffer.Buffer { return g.buf.Load() }

// openBuffer opens the buffer and the queues of every uplink and makes
// them current.
func (g *Gateway) openBuffer() error {
	// Records left by an unclean stop are counted once Run runs: devices
	// connect meanwhile (Stats.Counting).
	buf, err := buffer.Open(g.cfg.Buffer, g.log.With("component", "buffer"), g.metrics, buffer.WithLazyCount())
	if err != nil {
		return err
	}
	// Create the uplinks' queues now so /status lists them; each
	// forwarder attaches to its own when it starts. A change of the
	// uplinks waits (upMu), so none is missed.
	g.upMu.Lock()
	defer g.upMu.Unlock()
	for _, f := range g.uplinks.Load().list {
		for _, q := range []string{queueName(f.cfg.Name), deadLetterName(f.cfg.Name)} {
			if _, err = buf.Queue(q); err != nil {
				buf.Close()
				return fmt.Errorf("queue %s of uplink %s: %w", q, f.cfg.Name, err)
			}
		}
	}
	g.buf.Store(buf)
	g.bufDown.Store(nil)
	g.bufAvailable.Set(1)
	close(g.bufOpened)
	return nil
}

// bufferDown records why the buffer is not open, logging it when the reason
// is new.
func (g *Gateway) bufferDown(err error) {
	why := err.Error()
	if old := g.bufDown.Swap(&why); old != nil && *old == why {
		g.log.Debug("buffer still unavailable", "err", err)
		return
	}
	hint := "run `edgegate buffer check` to see what is wrong and `edgegate buffer repair` to salvage it"
	if errors.Is(err, buffer.ErrNoSpace) {
		hint = "free disk space: the gateway opens the buffer by itself once there is room"
	}
	g.log.Error("buffer unavailable: refusing every event until it opens", "dir", g.cfg.Buffer.Dir, "err", err, "hint", hint)
}

// runBuffer runs the buffer until ctx ends, opening it first if New could
// not.
func (g *Gateway) runBuffer(ctx context.Context) error {
	if g.buffer() == nil && !g.retryOpen(ctx) {
		return nil
	}
	return g.buffer().Run(ctx)
}

// retryOpen tries to open the buffer until it opens (true) or ctx ends.
func (g *Gateway) retryOpen(ctx context.Context) bool {
	wait := g.bufRetry
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		err := g.openBuffer()
		if err == nil {
			g.log.Info("buffer opened", "dir", g.cfg.Buffer.Dir)
			return true
		}
		g.bufferDown(err)
		if errors.Is(err, buffer.ErrNoSpace) {
			wait = g.bufRetry
		} else {
			wait = min(2*wait, bufferRetryMax)
		}
		t.Reset(wait)
	}
}

// awaitBuffer waits until the buffer is open (true), or ctx ends or stop
// is closed (false).
func (g *Gateway) awaitBuffer(ctx context.Context, stop <-chan struct{}) bool {
	select {
	case <-g.bufOpened:
		return true
	case <-ctx.Done():
	case <-stop:
	}
	return false
}

// bufferStats returns the buffer's accounting, zero while it is not open.
func (g *Gateway) bufferStats() buffer.Stats {
	if buf := g.buffer(); buf != nil {
		return buf.Stats()
	}
	return buffer.Stats{}
}
