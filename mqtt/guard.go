package mqtt

import (
	"slices"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"
)

// topicAliasMaximum is the number of topic aliases an MQTT 5 client may
// set up (mochi's default, 65,535 aliases of up to max_topic_length bytes
// each, would let one client pin 64 MiB).
const topicAliasMaximum = 64

// sustainedExcess is how long a client may stay over its publish rate
// before it is disconnected.
const sustainedExcess = 5 * time.Second

// guardHook enforces protocol rules mochi does not and the configured
// limits. It is the first hook, so it sees every packet before the others
// (authentication and access control included).
//
// A device PUBLISH it answers itself (a refused topic, a QoS 2 resend
// awaiting PUBREL) is neutralised: OnPacketRead
// returns a PUBACK for packet identifier 0 instead, which mochi's
// processPuback ignores (no flow uses identifier 0). Nothing of mochi's
// publish path then runs for it: no receive quota, no ACL check, no Handler,
// no retained message.
type guardHook struct {
	mochi.HookBase
	b *Broker
}

func (h *guardHook) ID() string { return "edgegate-guard" }

func (h *guardHook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnect, mochi.OnPacketRead, mochi.OnSubscribe, mochi.OnWill,
		mochi.OnRetainMessage, mochi.OnRetainedExpired:
		return true
	}
	return false
}

// neutral is the packet a handled PUBLISH becomes (see guardHook).
func neutral(pk packets.Packet) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Puback, Remaining: 2},
		ProtocolVersion: pk.ProtocolVersion,
	}
}

// OnConnect caps the keep-alive of MQTT 5 clients at the server
// keep-alive.
func (h *guardHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if ka := uint16(h.b.cfg.Limits.ServerKeepAlive / time.Second); ka > 0 && cl.Properties.ProtocolVersion == 5 &&
		(cl.State.Keepalive == 0 || cl.State.Keepalive > ka) { // 0: the client asked for none
		cl.State.ServerKeepalive = true // mochi tells the client in CONNACK
		cl.State.Keepalive = ka
	}
	return nil
}

// OnPacketRead vets every device PUBLISH before mochi processes it.
func (h *guardHook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	if pk.PublishValidate(topicAliasMaximum) != packets.CodeSuccess {
		return pk, nil // a protocol error: mochi disconnects the client
	}
	return h.b.vetPublish(cl, pk)
}

// vetPublish counts a device PUBLISH, holds it to the client's publish
// rate and to its fair share of a limited intake (LimitIntake), and answers it itself if it is to a topic no device may publish to
// or a QoS 2 resend whose PUBREL is awaited. Otherwise mochi processes it
// (and OnPublish hands it to the Handler).
func (b *Broker) vetPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	qos := min(pk.FixedHeader.Qos, 2)
	b.m.received[qos].Inc()
	if cc, ok := cl.Net.Conn.(*clientConn); ok {
		if cc.lim != nil && !cc.limChecked {
			cc.limChecked = true // the identity is settled once the client publishes
			if b.rateExempt(cl) {
				cc.lim = nil
			}
		}
		if cc.lim != nil && b.limitRate(cl, cc) == rateDisconnect {
			return pk, packets.ErrRejectPacket // ends the read loop: the will is sent
		}
		b.holdToShare(cl, cc)
	}
	if reason := b.topicRefusal(pk.TopicName); reason != "" {
		if reason == "reserved_topic" {
			b.m.droppedReserved.Inc()
		} else {
			b.m.droppedTopicLimit.Inc()
		}
		b.logs.topic.Log("client", cl.ID, "reason", reason, "topic", clip(pk.TopicName), "qos", qos)
		b.answerRefused(cl, pk, packets.ErrTopicNameInvalid)
		return neutral(pk), nil
	}
	if qos == 2 {
		// mochi would answer PUBREC 0x91 (packet identifier in use), which a
		// client reads as failure although the message was stored.
		if in, ok := cl.State.Inflight.Get(pk.PacketID); ok && in.FixedHeader.Type == packets.Pubrec {
			b.m.qos2Resends.Inc()
			b.writeAck(cl, pk, packets.CodeSuccess)
			return neutral(pk), nil
		}
	}
	return pk, nil
}

// answerRefused answers a publish that is never accepted: MQTT 5 QoS 1/2
// gets a negative ack with code, MQTT 3.1.1 QoS 1/2 a normal ack (the device
// would resend forever otherwise; a later PUBREL gets mochi's PUBCOMP),
// QoS 0 nothing.
func (b *Broker) answerRefused(cl *mochi.Client, pk packets.Packet, code packets.Code) {
	switch {
	case pk.FixedHeader.Qos == 0:
	case cl.Properties.ProtocolVersion == 5:
		b.writeAck(cl, pk, code)
	default:
		b.writeAck(cl, pk, packets.CodeSuccess)
	}
}

// topicRefusal says why a device may not publish to topic ("" if it may):
// "reserved_topic" (starts with '$') or "topic_limit" (longer or deeper than
// the limits).
func (b *Broker) topicRefusal(topic string) string {
	switch {
	case strings.HasPrefix(topic, "$"):
		return "reserved_topic"
	case b.overTopicLimits(topic):
		return "topic_limit"
	}
	return ""
}

func (b *Broker) overTopicLimits(topic string) bool {
	l := b.cfg.Limits
	return len(topic) > l.MaxTopicLength || strings.Count(topic, "/")+1 > l.MaxTopicLevels
}

// clip shortens a topic for a log line.
func clip(topic string) string {
	const n = 128
	if len(topic) <= n {
		return topic
	}
	return topic[:n] + "…"
}

type rateOutcome int

const (
	ratePass rateOutcome = iota
	rateDisconnect
)

// limitRate takes a token from the connection's bucket. Over the rate, the
// message waits for its token on the client's own read goroutine, so only
// that client slows down: the broker stops reading its socket and TCP
// pushes back. (Dropping QoS 0 instead let a flooder keep a core busy
// reading and discarding: the other devices' throughput fell by a quarter
// in BenchmarkNeighboursUnderFlood.) A client over the rate for excessLimit
// is disconnected (MQTT 5: DISCONNECT 0x96).
//
// A run over the rate ends when the client pauses: when, between two of
// its messages over the rate, the broker waited for it to send (Read
// blocked) as long as it takes to refill half the bucket. Time the broker
// spent elsewhere (a slow handler, a starved CPU) refills the bucket as
// well but is no pause of the client's: counted as one, it let a flooder
// go on for ever on a loaded machine.
func (b *Broker) limitRate(cl *mochi.Client, cc *clientConn) rateOutcome {
	now := time.Now()
	if cc.lim.AllowN(now, 1) {
		return ratePass
	}
	paused := cc.waited >= refillHalf(cc.lim)
	cc.waited = 0
	if cc.excessSince.IsZero() || paused {
		cc.excessSince = now
	} else if now.Sub(cc.excessSince) >= b.excessLimit {
		b.m.rateDisconnects.Inc()
		b.logs.rate.Log("client", cl.ID, "remote", cl.Net.Remote, "publish_rate", b.cfg.Limits.PublishRate, "over_for", now.Sub(cc.excessSince).Round(time.Millisecond))
		if cl.Properties.ProtocolVersion == 5 {
			_ = b.srv.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
		} else {
			cl.Stop(packets.ErrMessageRateTooHigh)
		}
		return rateDisconnect
	}
	b.m.rateDelayed.Inc()
	r := cc.lim.ReserveN(now, 1)
	t := time.NewTimer(r.DelayFrom(now))
	defer t.Stop()
	select {
	case <-t.C:
	case <-cc.ctx.Done():
	}
	return ratePass
}

// rateExempt reports whether cl authenticated as one of the identities
// exempt from the publish rate (limits.publish_rate_exempt).
func (b *Broker) rateExempt(cl *mochi.Client) bool {
	id := b.identity(cl)
	return id.Method != AuthAnonymous && id.Username != "" && slices.Contains(b.cfg.Limits.PublishRateExempt, id.Username)
}

// refillHalf is how long lim takes to refill half its bucket.
func refillHalf(lim *rate.Limiter) time.Duration {
	return time.Duration(float64(lim.Burst()) / 2 / float64(lim.Limit()) * float64(time.Second))
}

// OnSubscribe makes filters over the topic limits invalid, so that mochi
// answers them SUBACK 0x8F (MQTT 5) / 0x80 (3.1.1) and never stores them.
func (h *guardHook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	var out packets.Subscriptions
	for i, sub := range pk.Filters {
		if !h.b.overTopicLimits(sub.Filter) {
			continue
		}
		if out == nil {
			out = append(packets.Subscriptions(nil), pk.Filters...)
		}
		h.b.m.refusedSubscriptions.Inc()
		h.b.logs.subscribe.Log("client", cl.ID, "filter", clip(sub.Filter))
		out[i].Filter = invalidFilter
	}
	if out != nil {
		pk.Filters = out
	}
	return pk
}

// invalidFilter is a filter mochi's IsValidFilter refuses ('#' not last).
const invalidFilter = "#/"

// OnWill keeps a will from being retained over the retained limits.
func (h *guardHook) OnWill(cl *mochi.Client, will mochi.Will) (mochi.Will, error) {
	if will.Retain && len(will.Payload) > 0 {
		size := len(will.TopicName) + len(will.Payload) + userPropsSize(will.User)
		if !h.b.retained.fits(h.b, will.TopicName, size) {
			will.Retain = false
		}
	}
	return will, nil
}

// OnRetainMessage follows what mochi retains (device, gateway and will
// messages) for the retained limits.
func (h *guardHook) OnRetainMessage(cl *mochi.Client, pk packets.Packet, r int64) {
	h.b.retained.set(pk.TopicName, len(pk.Payload), retainedSize(pk))
}

// OnRetainedExpired follows retained messages mochi expired.
func (h *guardHook) OnRetainedExpired(topic string) { h.b.retained.set(topic, 0, 0) }

// retainedSet accounts the retained messages for the limits: how many
// topics hold one and their total size.
type retainedSet struct {
	maxCount int
	maxBytes int64

	mu    sync.Mutex
	sizes map[string]int
	bytes int64
}

// fits reports whether a retained message of size for topic stays within
// the limits (replacing the topic's current one); if not it is counted and
// logged. Concurrent publishers may overshoot by one message each: the
// check and mochi's store are not one step.
func (s *retainedSet) fits(b *Broker, topic string, size int) bool {
	s.mu.Lock()
	cur, exists := s.sizes[topic]
	count, bytes := len(s.sizes), s.bytes
	s.mu.Unlock()
	reason := ""
	switch {
	case !exists && count >= s.maxCount:
		reason = "count"
		b.m.retainRefusedCount.Inc()
	case bytes-int64(cur)+int64(size) > s.maxBytes:
		reason = "bytes"
		b.m.retainRefusedBytes.Inc()
	default:
		return true
	}
	b.logs.retain.Log("topic", clip(topic), "limit", reason, "max_retained_messages", s.maxCount, "max_retained_bytes", s.maxBytes)
	return false
}

// set records topic's retained message (payloadLen 0: none).
func (s *retainedSet) set(topic string, payloadLen, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sizes == nil {
		s.sizes = make(map[string]int)
	}
	s.bytes -= int64(s.sizes[topic])
	if payloadLen == 0 {
		delete(s.sizes, topic)
		return
	}
	s.sizes[topic] = size
	s.bytes += int64(size)
}

func (s *retainedSet) stats() (count int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sizes), s.bytes
}

// retainedSize is what a retained message costs: topic, payload and the
// properties kept with it.
func retainedSize(pk packets.Packet) int {
	p := pk.Properties
	return len(pk.TopicName) + len(pk.Payload) + userPropsSize(p.User) +
		len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData)
}

func userPropsSize(u []packets.UserProperty) int {
	n := 0
	for _, p := range u {
		n += len(p.Key) + len(p.Val)
	}
	return n
}
