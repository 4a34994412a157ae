package mqtt

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"runtime/debug"
	"sync"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Pipelining (AsyncHandler). mochi calls OnPublish on the client's read
// goroutine and writes the PUBACK when it returns, so a Handler that waits
// for the disk there lets each device have one message per commit round,
// whatever its in-flight window. With an AsyncHandler, guardHook's
// OnPacketRead (on the same goroutine, before mochi processes the packet)
// instead resolves the topic alias, Begins the message, queues it on the
// connection's pipeline and hands mochi a neutral packet in its place (a
// PUBACK for packet id 0, which mochi ignores; returning ErrRejectPacket
// from OnPublish instead makes mochi box the whole packet for a Debug
// line, ~900 bytes of garbage per message). The pipeline's
// worker goroutine (alive while the queue is not empty) Waits for each
// queued message in arrival order and then either feeds the packet back
// into mochi (Server.InjectPacket, marked so that OnPublish lets it
// through), which writes the PUBACK, retains it and delivers it to local
// subscribers exactly as for a synchronous Handler, or answers the failure
// as onPublish would have. The group committer never writes to a socket:
// a slow client stalls only its own worker, and through its full window
// its own read goroutine.
//
// Whatever mochi or the broker answers on the read goroutine itself (a
// refusal, a QoS 2 message, a SUBSCRIBE, a DISCONNECT, a large packet,
// the end of the connection) first waits until the pipeline is empty
// (settle), so acknowledgements and deliveries keep the order the packets
// arrived in.

// injectedMark in Packet.Mods.MaxSize marks a packet the pipeline feeds
// back into mochi (stored already). Mods never come from the wire, and
// mochi reads them only when it encodes a packet, after OnPublish has
// restored them.
const injectedMark = 0xed6e_9a7e

// pipedCost is the memory a queued publish is charged beyond its topic and
// payload: the decoded packet and the handler's state.
const pipedCost = 1 << 10

// maxPipedBytes bounds the memory of all queued publishes together; past
// it, publishes are handled one at a time, as without an AsyncHandler.
const maxPipedBytes = 16 << 20

// rings recycles the pipelines' queue rings (a slot holds a whole
// packets.Packet, ~800 bytes): an idle pipeline gives its ring back, so
// idle connections hold none, and a busy one gets a ring again without
// allocating it. Ring sizes are powers of two capped at the window; pool i
// holds rings of bits.Len(size) == i.
type rings [18]sync.Pool

func (r *rings) get(size int) []piped {
	if v, _ := r[bits.Len(uint(size))].Get().(*[]piped); v != nil && len(*v) == size {
		return *v
	}
	return make([]piped, size)
}

// put keeps ring, whose slots are all zero.
func (r *rings) put(ring []piped) { r[bits.Len(uint(len(ring)))].Put(&ring) }

// piped is one queued publish.
type piped struct {
	pk   packets.Packet
	p    Pending // nil: nothing to wait for
	cost int64
}

// pipeline is one connection's queue of publishes being stored. push and
// settle run on the connection's read goroutine, the worker on its own.
type pipeline struct {
	b      *Broker
	cc     *clientConn // the connection's writes, corked around a run of ready acks
	window int

	mu      sync.Mutex
	changed sync.Cond // an entry left the queue, or the worker stopped
	waiters int       // goroutines waiting on changed
	ring    []piped   // grows up to window
	head, n int
	running bool // the worker goroutine is alive (until the queue is empty)
	cl      *mochi.Client
}

func newPipeline(b *Broker, cc *clientConn) *pipeline {
	p := &pipeline{b: b, cc: cc, window: min(b.cfg.Limits.PublishWindow, b.cfg.MaxInflight)}
	p.changed.L = &p.mu
	return p
}

// idle reports whether nothing is queued (every earlier publish has been
// answered).
func (p *pipeline) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.running
}

// room waits while the window is full: a publish is begun only when it
// can be queued.
func (p *pipeline) room() {
	p.mu.Lock()
	if p.n >= p.window {
		p.b.m.windowFull.Inc()
		for p.n >= p.window {
			p.wait()
		}
	}
	p.mu.Unlock()
}

// push queues e and starts the worker if it is not running. Only the read
// goroutine pushes, after room: the window has room.
func (p *pipeline) push(cl *mochi.Client, e piped) {
	p.mu.Lock()
	if p.n == len(p.ring) {
		p.grow()
	}
	p.ring[(p.head+p.n)%len(p.ring)] = e
	p.n++
	p.b.m.piped.Add(1)
	start := !p.running
	p.running = true
	p.cl = cl
	p.mu.Unlock()
	if start {
		go p.work()
	}
}

// grow enlarges the ring (doubling, up to the window), keeping the order.
func (p *pipeline) grow() {
	size := min(max(4, 2*len(p.ring)), p.window)
	ring := p.b.rings.get(size)
	for i := range p.n {
		ring[i] = p.ring[(p.head+i)%len(p.ring)]
	}
	if p.ring != nil {
		clear(p.ring)
		p.b.rings.put(p.ring)
	}
	p.ring, p.head = ring, 0
}

// wait waits on changed; mu is held.
func (p *pipeline) wait() {
	p.waiters++
	p.changed.Wait()
	p.waiters--
}

// settle returns once every queued publish is answered and the worker has
// stopped.
func (p *pipeline) settle() {
	p.mu.Lock()
	for p.running {
		p.wait()
	}
	p.mu.Unlock()
}

// work finishes the queued publishes in order until the queue is empty.
// While the next publish is stored already, the connection's writes are
// corked: the acks of a commit round go out in one write, not one each.
func (p *pipeline) work() {
	corked := false
	for {
		p.mu.Lock()
		if p.n == 0 {
			p.running = false
			p.cl = nil
			if p.ring != nil {
				p.b.rings.put(p.ring)
				p.ring, p.head = nil, 0
			}
			if p.waiters > 0 {
				p.changed.Broadcast()
			}
			p.mu.Unlock()
			return
		}
		e, cl := p.ring[p.head], p.cl
		p.mu.Unlock()

		err := p.b.waitPending(cl, e.pk, e.p)
		p.b.pipedBytes.Add(-e.cost)
		p.mu.Lock()
		next := p.n > 1 && ready(p.ring[(p.head+1)%len(p.ring)].p)
		p.mu.Unlock()
		if next && !corked {
			corked = true
			p.cc.cork()
		}
		p.b.answer(cl, e.pk, err)
		if corked && !next {
			corked = false
			if err := p.cc.uncork(); err != nil {
				cl.Stop(err)
			}
		}

		p.mu.Lock()
		p.ring[p.head] = piped{}
		p.head = (p.head + 1) % len(p.ring)
		p.n--
		p.b.m.piped.Add(-1)
		if p.waiters > 0 {
			p.changed.Broadcast()
		}
		p.mu.Unlock()
	}
}

// ready reports whether Wait on p would return at once.
func ready(p Pending) bool { return p == nil || p.Ready() }

// pipeFor returns the pipeline that takes pk, nil when pk is handled
// synchronously (in OnPublish): no AsyncHandler, not one of our
// connections, QoS 2, or a large packet, whose memory the packet budget
// accounts only until the next read.
func (b *Broker) pipeFor(cl *mochi.Client, pk packets.Packet) *pipeline {
	if pk.FixedHeader.Qos >= 2 {
		return nil
	}
	if cc, ok := cl.Net.Conn.(*clientConn); ok && cc.pipe != nil && cc.held == 0 {
		return cc.pipe
	}
	return nil
}

// pipePublish handles a device QoS 0/1 PUBLISH for an AsyncHandler from
// OnPacketRead (guardHook vetted it): it returns the packet mochi should
// process in its place: neutral (answered, or queued on the pipeline), or
// pk marked as stored (answered at once: mochi acks and delivers it).
func (b *Broker) pipePublish(cl *mochi.Client, pipe *pipeline, pk packets.Packet) packets.Packet {
	if pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 { // as mochi's processPublish
		pk.TopicName = cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, pk.TopicName)
		pk.Properties.TopicAliasFlag = false
		pk.Properties.TopicAlias = 0
	}
	if !mochi.IsValidFilter(pk.TopicName, true) {
		return pk // mochi drops it, as before
	}
	err := b.onPublish(cl, pk, pipe)
	switch {
	case err == nil:
		pk.Mods.MaxSize = injectedMark
		return pk
	case errors.Is(err, packets.CodeSuccessIgnore):
		b.writeAck(cl, pk, packets.CodeSuccess) // what mochi writes for it
	}
	return neutral(pk)
}

// pipelineOf returns cl's pipeline, nil when its publishes are handled
// synchronously (no AsyncHandler, or not one of our connections).
func (b *Broker) pipelineOf(cl *mochi.Client) *pipeline {
	if cc, ok := cl.Net.Conn.(*clientConn); ok {
		return cc.pipe
	}
	return nil
}

// settle waits until cl's pipeline is empty: called before anything on the
// read goroutine answers or processes a packet out of the pipeline.
func (b *Broker) settle(cl *mochi.Client) {
	if p := b.pipelineOf(cl); p != nil {
		p.settle()
	}
}

// begin hands m to the AsyncHandler; a panic in it becomes an error.
func (b *Broker) begin(ctx context.Context, h AsyncHandler, m Message) (p Pending, err error) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("mqtt handler panicked", "client", m.ClientID, "topic", m.Topic,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			p, err = nil, fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h.Begin(ctx, m)
}

// waitPending waits for p; a panic in it becomes an error.
func (b *Broker) waitPending(cl *mochi.Client, pk packets.Packet, p Pending) (err error) {
	if p == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("mqtt handler panicked", "client", cl.ID, "topic", pk.TopicName,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return p.Wait(b.pipeCtx)
}

// answer answers a queued publish once Wait returned err: stored, it goes
// back into mochi (ack, retain, delivery); not stored, it gets the answer
// onPublish gives a failed Handle.
func (b *Broker) answer(cl *mochi.Client, pk packets.Packet, err error) {
	if err != nil {
		if b.outcome(cl, pk, err) == packets.CodeSuccessIgnore {
			b.writeAck(cl, pk, packets.CodeSuccess) // mochi's answer to CodeSuccessIgnore
		}
		return
	}
	b.inject(cl, pk)
}

// inject feeds a stored publish back into mochi, which acknowledges it,
// retains it and delivers it to local subscribers (OnPublish lets it
// through).
func (b *Broker) inject(cl *mochi.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos > 0 && cl.Closed() {
		// mochi could not write the ack, and delivers nothing when that
		// fails; the device resends it after reconnecting (a resend of a
		// stored message is recognised by the Handler).
		return
	}
	// The alias was resolved when the packet was read; the read loop may
	// have bound it to another topic since.
	pk.Properties.TopicAliasFlag = false
	pk.Properties.TopicAlias = 0
	pk.Mods.MaxSize = injectedMark
	if err := b.srv.InjectPacket(cl, pk); err != nil {
		b.log.Debug("deliver stored publish", "client", cl.ID, "topic", pk.TopicName, "err", err)
		return
	}
	// InjectPacket counts the packet as received once more.
	atomic.AddInt64(&b.srv.Info.PacketsReceived, -1)
	atomic.AddInt64(&b.srv.Info.MessagesReceived, -1)
}

// pipelined tries to queue a publish whose outcome is not known yet (p not
// nil) or that must wait for the ones before it (nothing to wait for but
// the queue is not empty). It reports false when the publish must be
// answered now, synchronously: the pipeline is empty and there is nothing
// to wait for.
func (b *Broker) pipelined(pipe *pipeline, cl *mochi.Client, pk packets.Packet, p Pending) bool {
	if p == nil && pipe.idle() {
		return false
	}
	cost := int64(len(pk.Payload) + len(pk.TopicName) + pipedCost)
	b.pipedBytes.Add(cost)
	pipe.push(cl, piped{pk: pk, p: p, cost: cost})
	return true
}
