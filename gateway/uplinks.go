package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/uplink"
)

// The running uplinks: one forwarder (its sender, its delivery loop, its
// metrics) per configured uplink, replaced live by applyUplinks.
//
// A changed uplink keeps its queue (uplink.<name>) and its dead-letter
// queue, and the cut between its generations is clean: the old forwarder
// stops fetching, finishes its batch in hand within the handoff bound or
// abandons it (nacked: the new generation sends it again, at-least-once as
// after a restart), its sender is closed (an MQTT uplink's client
// disconnects before the new one connects with the same client id), and
// only then does the new forwarder start on the same queue. Every event is
// delivered by one generation; only an abandoned batch may reach both
// endpoints.

// uplinkSet is one generation of the running uplinks, in configuration
// order. It is not modified once stored.
type uplinkSet struct {
	list []*forwarder
}

func (s *uplinkSet) find(name string) *forwarder {
	for _, f := range s.list {
		if f.cfg.Name == name {
			return f
		}
	}
	return nil
}

func (s *uplinkSet) names() []string {
	out := make([]string, len(s.list))
	for i, f := range s.list {
		out[i] = f.cfg.Name
	}
	return out
}

// uplinkChange is how applyUplinks treats the uplinks a configuration
// changes or leaves out.
type uplinkChange struct {
	// DropRemovedBacklog purges a removed uplink's queue: the events it had
	// not delivered. By default they stay on disk (counted in
	// buffer.max_bytes, reported by /v1/uplinks as removed) for `edgegate
	// buffer replay` to another uplink or `purge`, and an uplink added
	// again with the same name delivers them. Its dead letters and
	// retained history stay either way.
	DropRemovedBacklog bool
	// Handoff bounds how long a changed or removed uplink's forwarder may
	// take to finish its send in flight before it is abandoned; 0: the
	// configuration's shutdown_timeout.
	Handoff time.Duration
}

// uplinkPlan is a change of the running uplinks, prepared: every sender it
// needs is built. commit makes it current; discard drops it.
type uplinkPlan struct {
	g       *Gateway
	base    *uplinkSet      // the set it was prepared against
	next    []uplink.Config // the new configuration of every uplink
	senders []uplink.Sender // for next[i]; nil: unchanged, the running one stays
	initial bool            // the uplinks New starts with: nothing to log
}

// prepareUplinks builds the senders of the uplinks of next that are new
// or changed: the only step of a change that can fail, so nothing runs
// differently when it does. The caller holds reloadMu until it commits or
// discards the plan.
func (g *Gateway) prepareUplinks(next []uplink.Config) (*uplinkPlan, error) {
	p := &uplinkPlan{g: g, base: g.uplinks.Load(), next: next, senders: make([]uplink.Sender, len(next))}
	for i, u := range next {
		if old := p.base.find(u.Name); old != nil && reflect.DeepEqual(old.cfg, u) {
			continue
		}
		s, err := uplink.New(u, g.log.With("component", "uplink", "uplink", u.Name), g.metrics)
		if err != nil {
			p.discard()
			return nil, fmt.Errorf("uplink %s: %w", u.Name, err)
		}
		p.senders[i] = s
	}
	return p, nil
}

// discard releases the senders a plan built.
func (p *uplinkPlan) discard() {
	for _, s := range p.senders {
		closeSender(p.g, s, "")
	}
}

// applyUplinks makes next the running uplinks (see uplinkChange): it
// prepares and commits a plan. A reload that also swaps the routes
// prepares first, swaps, then commits, so that an event is routed to an
// uplink only while it is configured.
func (g *Gateway) applyUplinks(ctx context.Context, next []uplink.Config, opts uplinkChange) error {
	p, err := g.prepareUplinks(next)
	if err != nil {
		return err
	}
	p.commit(ctx, opts)
	return nil
}

// commit makes the plan's uplinks current: unchanged uplinks keep running
// untouched; changed and removed ones stop (within opts.Handoff, or until
// ctx is done, then their batch in hand is abandoned) and their senders
// close; then the new generations and added uplinks start. It cannot fail.
func (p *uplinkPlan) commit(ctx context.Context, opts uplinkChange) {
	g := p.g
	g.upMu.Lock()
	defer g.upMu.Unlock()
	if g.uplinks.Load() != p.base {
		panic("gateway: uplink plans committed concurrently") // reloadMu serialises them
	}
	next := &uplinkSet{list: make([]*forwarder, len(p.next))}
	var fresh, retired []*forwarder
	prev := map[*forwarder]*forwarder{} // new generation → old
	for i, u := range p.next {
		old := p.base.find(u.Name)
		if p.senders[i] == nil {
			next.list[i] = old
			continue
		}
		f := g.newUplinkForwarder(u, p.senders[i])
		next.list[i] = f
		fresh = append(fresh, f)
		if old != nil {
			prev[f] = old
			retired = append(retired, old)
		}
	}
	var removed []string
	for _, f := range p.base.list {
		if next.find(f.cfg.Name) == nil {
			retired = append(retired, f)
			removed = append(removed, f.cfg.Name)
		}
	}
	g.uplinks.Store(next)

	handoff := opts.Handoff
	if handoff <= 0 {
		handoff = g.current().ShutdownTimeout
	}
	g.retire(ctx, retired, handoff)
	for _, name := range removed {
		g.removeUplink(name, opts.DropRemovedBacklog)
	}
	for _, f := range fresh {
		if old := prev[f]; old != nil {
			f.delivery.Continue(old.delivery)
			g.log.Info("uplink changed: the new configuration takes over its queue", "uplink", f.cfg.Name, "config", f.cfg.Redacted())
		} else if !p.initial {
			g.log.Info("uplink added", "uplink", f.cfg.Name, "config", f.cfg.Redacted())
		}
		g.fwd.launch(g, f)
	}
	g.followUplinks() // the MQTT config channel moves to a new connection
}

// retire stops the forwarders, waits up to handoff (or until ctx is done)
// for their batches in hand, abandons what is left, and closes their
// senders once they have returned.
func (g *Gateway) retire(ctx context.Context, fs []*forwarder, handoff time.Duration) {
	if len(fs) == 0 {
		return
	}
	for _, f := range fs {
		f.stopFetching()
	}
	timer := time.NewTimer(handoff)
	defer timer.Stop()
	for _, f := range fs {
		if f.done == nil { // never started: Run is not active
			continue
		}
		select {
		case <-f.done:
			continue
		case <-timer.C:
		case <-ctx.Done():
		}
		for _, f := range fs {
			if f.abandon == nil {
				continue
			}
			select {
			case <-f.done:
			default:
				g.handoffsAbandoned.Inc()
				g.log.Warn("uplink change: abandoning the send in flight; the new configuration sends it again",
					"uplink", f.cfg.Name, "handoff", handoff)
				f.abandon()
			}
		}
		break
	}
	for _, f := range fs {
		if f.done != nil {
			<-f.done
		}
		closeSender(g, f.sender, f.cfg.Name)
	}
}

// removeUplink forgets a removed uplink's metrics and, when asked, drops
// its backlog.
func (g *Gateway) removeUplink(name string, drop bool) {
	label := strings.TrimSuffix(strings.TrimPrefix(metricname.With("", "uplink", name), "{"), "}")
	for _, m := range g.metrics.ListMetricNames() {
		if strings.Contains(m, "{"+label+",") || strings.Contains(m, "{"+label+"}") ||
			strings.Contains(m, ","+label+",") || strings.Contains(m, ","+label+"}") {
			g.metrics.UnregisterMetric(m)
		}
	}
	buf := g.buffer()
	if !drop || buf == nil {
		g.log.Warn("uplink removed: its backlog stays in the buffer; replay it to another uplink or purge it with `edgegate buffer`",
			"uplink", name, "queue", queueName(name))
		return
	}
	res, err := g.bufferTool().Purge(PurgeRequest{Queue: queueName(name), All: true})
	if err != nil && !errors.Is(err, ErrNotFound) {
		g.log.Error("uplink removed: dropping its backlog failed; what is left stays in the buffer", "uplink", name, "err", err)
		return
	}
	g.removedDropped.Add(res.Purged)
	g.log.Warn("uplink removed: its backlog is dropped", "uplink", name, "events", res.Purged)
}

// closeSender releases a sender's connections (paho goroutines, idle HTTP
// connections).
func closeSender(g *Gateway, s uplink.Sender, name string) {
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			g.log.Warn("close uplink", "uplink", name, "err", err)
		}
	}
}

// newUplinkForwarder returns the forwarder of uplink u sending with s. It
// registers the uplink's metrics (a changed uplink's continue).
func (g *Gateway) newUplinkForwarder(u uplink.Config, s uplink.Sender) *forwarder {
	f := newForwarder(u, s, g.log, g.metrics)
	f.tail = g.tail
	f.deadLetter = deadLetterName(u.Name)
	if u.DeadLetter != "" {
		f.deadLetter = queueName(u.DeadLetter)
	}
	return f
}

// forwarding runs the forwarders while Run is active: those of the set at
// its start and those applyUplinks launches later.
type forwarding struct {
	ctx        context.Context // bounds in-flight sends
	abandonAll context.CancelFunc
	wg         sync.WaitGroup
	failed     chan error // the first forwarder's fatal (buffer) error
	stopped    bool       // guarded by Gateway.upMu: launch nothing more
}

// startForwarding launches every uplink's forwarder, with in-flight sends
// bounded by a context that outlives ctx (finishSends ends it).
func (g *Gateway) startForwarding(ctx context.Context) *forwarding {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &forwarding{ctx: fctx, abandonAll: cancel, failed: make(chan error, 1)}
	g.upMu.Lock()
	defer g.upMu.Unlock()
	g.fwd = r
	for _, f := range g.uplinks.Load().list {
		r.launch(g, f)
	}
	return r
}

// launch runs f until it stops fetching or is abandoned; f waits for the
// buffer first. The caller holds g.upMu. A nil or stopped forwarding
// launches nothing.
func (r *forwarding) launch(g *Gateway, f *forwarder) {
	if r == nil || r.stopped {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	f.done, f.abandon = make(chan struct{}), cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(f.done)
		defer cancel()
		if !g.awaitBuffer(ctx, f.stop) {
			return
		}
		err := f.attach(g.buffer())
		if err == nil {
			err = f.run(ctx)
		}
		if err != nil {
			select {
			case r.failed <- err:
			default:
			}
		}
	}()
}

// stop makes every running forwarder stop fetching and launches no more.
func (g *Gateway) stopForwarding(r *forwarding) {
	g.upMu.Lock()
	defer g.upMu.Unlock()
	r.stopped = true
	for _, f := range g.uplinks.Load().list {
		f.stopFetching()
	}
}

// wait returns a channel closed once every forwarder launched has returned.
func (r *forwarding) wait() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	return done
}

// err returns the first fatal error of a forwarder, if any.
func (r *forwarding) err() error {
	select {
	case err := <-r.failed:
		return err
	default:
		return nil
	}
}

// removedUplinks returns the uplinks whose queue in the buffer still holds
// events but that the configuration no longer names, sorted.
func removedUplinks(queues []string, running *uplinkSet) []string {
	var out []string
	for _, q := range queues {
		if kind, owner := queueKind(q); kind == KindUplink && running.find(owner) == nil {
			out = append(out, owner)
		}
	}
	slices.Sort(out)
	return out
}
