package mqtt

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"golang.org/x/time/rate"
)

// minShare is the least publish rate, per second, the fair share holds a
// connection to: below it a device would wait longer than its own
// acknowledgement timeouts.
const minShare = 1

// fairShare divides an intake limit (Broker.LimitIntake) max-min fairly
// among the connections: each connection that publishes less than the
// share is never held back, and those that would publish more are read at
// the share, which is as large as the limit allows. Connections register
// while they run (add, remove); LimitIntake measures each one's publish
// rate since its previous call.
type fairShare struct {
	share atomic.Uint64 // math.Float64bits of the per-connection rate; 0: no limit

	mu    sync.Mutex
	conns map[*clientConn]connCount // what each counted at the last LimitIntake
	last  time.Time                 // when LimitIntake last ran
}

// connCount is a connection's counters at one instant.
type connCount struct{ pubs, slowed int64 }

func (f *fairShare) add(c *clientConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		f.conns = make(map[*clientConn]connCount)
	}
	f.conns[c] = connCount{c.pubs.Load(), c.slowed.Load()}
}

func (f *fairShare) remove(c *clientConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

// current is the per-connection rate; 0: no limit.
func (f *fairShare) current() float64 { return math.Float64frombits(f.share.Load()) }

// LimitIntake caps the rate at which the broker reads device publishes,
// all connections together, at perSecond (0: no cap), divided max-min
// fairly: a connection that published less than its share since the
// previous call is never slowed, and the others share what is left
// equally. A connection over its share is read no faster than the share
// (its client's window of unacknowledged messages fills and TCP pushes
// back, as with publish_rate), counted in
// edgegate_mqtt_fair_share_delayed_total and logged (rate-limited); it is
// neither refused nor disconnected for it. It returns the share per
// connection (0: no connection is held back).
//
// The caller calls it periodically (about every second) from one
// goroutine: each call measures every connection's publish rate since
// the last, and a connection that was held back counts as wanting more.
func (b *Broker) LimitIntake(perSecond float64) float64 {
	f := &b.fair
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	dt := now.Sub(f.last).Seconds()
	f.last = now
	demand := make([]float64, 0, len(f.conns))
	for c, was := range f.conns {
		is := connCount{c.pubs.Load(), c.slowed.Load()}
		f.conns[c] = is
		switch {
		case is.slowed > was.slowed:
			demand = append(demand, math.Inf(1))
		case dt > 0:
			demand = append(demand, float64(is.pubs-was.pubs)/dt)
		}
	}
	share := 0.0
	if perSecond > 0 && dt > 0 {
		share = waterFill(demand, perSecond)
	}
	if math.IsInf(share, 1) {
		share = 0 // every connection fits: none is held back
	} else if share > 0 {
		share = max(share, minShare)
	}
	f.share.Store(math.Float64bits(share))
	return share
}

// waterFill returns the share s at which the demands, each capped at s,
// add up to limit: +Inf when all of them fit. demand is reordered.
func waterFill(demand []float64, limit float64) float64 {
	slices.Sort(demand)
	left := limit
	for i, d := range demand {
		n := float64(len(demand) - i)
		if d*n >= left {
			return left / n
		}
		left -= d
	}
	return math.Inf(1)
}

// holdToShare makes a publish of cc wait for the fair share when the
// broker limits its intake (LimitIntake) and cc publishes above its
// share. It runs on cc's read goroutine, so only that client waits.
func (b *Broker) holdToShare(cl *mochi.Client, cc *clientConn) {
	cc.pubs.Add(1)
	share := b.fair.current()
	if share <= 0 {
		return
	}
	now := time.Now()
	limit, burst := rate.Limit(share), int(math.Ceil(share)) // a second's worth
	switch {
	case cc.fair == nil:
		cc.fair = rate.NewLimiter(limit, burst)
	case cc.fair.Limit() != limit:
		cc.fair.SetLimitAt(now, limit)
		cc.fair.SetBurstAt(now, burst)
	}
	r := cc.fair.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait <= 0 {
		return
	}
	cc.slowed.Add(1)
	b.m.fairDelayed.Inc()
	b.logs.fair.Log("client", cl.ID, "remote", cl.Net.Remote, "fair_share_per_second", math.Round(share*10)/10)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cc.ctx.Done():
	}
}

// Publishes counts the device publishes the broker has read, of every
// QoS, those it refused included: the intake LimitIntake limits.
func (b *Broker) Publishes() uint64 {
	var n uint64
	for _, c := range b.m.received {
		n += c.Get()
	}
	return n
}
