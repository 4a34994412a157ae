package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/sync/semaphore"

	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/ratelog"
)

// sysTopicInterval is how often mochi refreshes its $SYS topics (each
// refresh reads runtime.MemStats); mochi's default is every second.
const sysTopicInterval = 10 // seconds

// Broker is the embedded MQTT broker devices publish to. Create it with New
// and start it with Run. Publish, Clients, Addr and Ready are safe for
// concurrent use at any time.
type Broker struct {
	cfg       Config
	h         Handler
	log       *slog.Logger
	m         brokerMetrics
	srv       *mochi.Server
	maxPacket uint32
	logs      deviceLogs          // Warn lines about misbehaving devices, rate-limited
	budget    *semaphore.Weighted // memory for large packets being read (clientConn)
	retained  retainedSet
	tls       map[string]*tls.Config // by listener id; tls and wss listeners
	// excessLimit is how long a client may stay over its publish rate
	// (sustainedExcess; tests shorten it before Run).
	excessLimit time.Duration

	running atomic.Bool
	ready   chan struct{}
	stop    chan struct{} // closed when shutdown begins
	conns   connSet
	clients clientTable // ClientList (clients.go)
	fair    fairShare   // LimitIntake (fairshare.go)

	// handlerCtx is passed to Handle; cancelled when shutdown begins. Set
	// by Run before the first connection is accepted.
	handlerCtx context.Context

	mu    sync.Mutex
	addrs map[string]net.Addr

	acc *accessState // access.go
}

type brokerMetrics struct {
	received                                            [3]*metrics.Counter
	errOverloaded, errRejected, errOther                *metrics.Counter
	droppedOverloaded, droppedRejected, droppedReserved *metrics.Counter
	droppedTopicLimit                                   *metrics.Counter
	tooLarge, overloadDisconnects                       *metrics.Counter
	refusedMaxConns, refusedOrigin, refusedHandshake    *metrics.Counter
	rateDelayed, rateDisconnects, fairDelayed           *metrics.Counter
	refusedSubscriptions, qos2Resends, budgetTimeouts   *metrics.Counter
	retainRefusedCount, retainRefusedBytes              *metrics.Counter
}

// New validates cfg and builds the broker. It starts no goroutine and binds
// nothing; Run does. A nil log discards logs; a nil set keeps metrics
// private. Metrics registered in set:
//
//	edgegate_mqtt_messages_received_total{qos="0|1|2"}  device publishes seen
//	edgegate_mqtt_handler_errors_total{kind="overloaded|rejected|other"}
//	edgegate_mqtt_messages_dropped_total{reason="overloaded|rejected|reserved_topic|topic_limit"}
//	    messages neither stored nor to be resent (QoS 0 not stored, rejected,
//	    device publish to a '$' topic or over the topic limits)
//	edgegate_mqtt_messages_too_large_total  packets/payloads over the limit
//	edgegate_mqtt_overload_disconnects_total  MQTT 3.1.1 connections closed
//	    because a QoS 1/2 message could not be stored
//	edgegate_mqtt_connections_refused_total{reason="max_connections|origin|tls_handshake"}
//	edgegate_mqtt_publish_delayed_total  publishes held back to the publish rate
//	edgegate_mqtt_rate_limit_disconnects_total  clients over the rate for too long
//	edgegate_mqtt_fair_share_delayed_total  publishes held back to the fair share (LimitIntake)
//	edgegate_mqtt_fair_share_per_second  gauge: the fair share per connection; 0: none held back
//	edgegate_mqtt_subscriptions_refused_total{reason="topic_limit"}
//	edgegate_mqtt_qos2_resends_total  QoS 2 resends answered while PUBREL was awaited
//	edgegate_mqtt_packet_budget_timeouts_total  connections closed waiting for
//	    memory to read a large packet
//	edgegate_mqtt_retained_refused_total{reason="count|bytes"}  messages
//	    delivered but not retained
//	edgegate_mqtt_retained_messages, edgegate_mqtt_retained_bytes  gauges
//	edgegate_mqtt_tls_cert_expiry_timestamp_seconds{listener="…"}  gauge
//	edgegate_mqtt_clients_connected  gauge
func New(cfg Config, h Handler, log *slog.Logger, set *metrics.Set) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("mqtt: nil Handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	maxPacket := uint32(cfg.MaxPayloadBytes + packetSlack)
	b := &Broker{
		cfg:         cfg,
		h:           h,
		log:         log,
		maxPacket:   maxPacket,
		logs:        newDeviceLogs(log),
		budget:      semaphore.NewWeighted(max(minPacketBudget, 8*int64(maxPacket))),
		retained:    retainedSet{maxCount: cfg.Limits.MaxRetainedMessages, maxBytes: int64(cfg.Limits.MaxRetainedBytes)},
		tls:         make(map[string]*tls.Config),
		excessLimit: sustainedExcess,
		ready:       make(chan struct{}),
		stop:        make(chan struct{}),
		handlerCtx:  context.Background(),
		addrs:       make(map[string]net.Addr),
	}
	b.registerMetrics(set)
	for _, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		c, pair, err := serverTLS(l.ID, *l.TLS, log)
		if err != nil {
			return nil, fmt.Errorf("mqtt listener %s: tls.%w", l.ID, err)
		}
		b.tls[l.ID] = c
		set.GetOrCreateGauge(metricname.With("edgegate_mqtt_tls_cert_expiry_timestamp_seconds", "listener", l.ID),
			func() float64 { return float64(certExpiry(pair).Unix()) })
	}
	b.initAccess(set)

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = b.maxPacket
	caps.ReceiveMaximum = uint16(cfg.MaxInflight)
	caps.MaximumInflight = uint16(cfg.MaxInflight)
	caps.MaximumSessionExpiryInterval = uint32(cfg.SessionExpiry / time.Second)
	caps.Compatibilities.NoInheritedPropertiesOnAck = true // Paho hangs on acks with properties
	caps.TopicAliasMaximum = topicAliasMaximum
	caps.MaximumClients = int64(cfg.Limits.MaxConnections) // also checked at accept
	// mochi's default (8192) preallocates a 64 KiB outbound queue per
	// client; devices here mostly publish, and local subscribers are
	// actuators. 1024 pending writes keep 100 clients under 1 MiB.
	caps.MaximumClientWritesPending = 1024
	b.srv = mochi.New(&mochi.Options{
		Capabilities:           caps,
		InlineClient:           true,
		Logger:                 slog.New(mochiLog{log.Handler()}).With("source", "mochi"),
		SysTopicResendInterval: sysTopicInterval,
	})
	// The guard first: it answers packets no other hook should see.
	if err := b.srv.AddHook(&guardHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add guard hook: %w", err)
	}
	if err := b.srv.AddHook(&accessHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add access hook: %w", err)
	}
	if err := b.srv.AddHook(&brokerHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add broker hook: %w", err)
	}
	if err := b.srv.AddHook(newPresenceHook(b, set), nil); err != nil {
		return nil, fmt.Errorf("add presence hook: %w", err)
	}
	if err := b.srv.AddHook(&clientsHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add clients hook: %w", err)
	}
	return b, nil
}

func (b *Broker) registerMetrics(set *metrics.Set) {
	for q := range b.m.received {
		b.m.received[q] = set.GetOrCreateCounter(metricname.With("edgegate_mqtt_messages_received_total", "qos", strconv.Itoa(q)))
	}
	c := set.GetOrCreateCounter
	b.m.errOverloaded = c(`edgegate_mqtt_handler_errors_total{kind="overloaded"}`)
	b.m.errRejected = c(`edgegate_mqtt_handler_errors_total{kind="rejected"}`)
	b.m.errOther = c(`edgegate_mqtt_handler_errors_total{kind="other"}`)
	b.m.droppedOverloaded = c(`edgegate_mqtt_messages_dropped_total{reason="overloaded"}`)
	b.m.droppedRejected = c(`edgegate_mqtt_messages_dropped_total{reason="rejected"}`)
	b.m.droppedReserved = c(`edgegate_mqtt_messages_dropped_total{reason="reserved_topic"}`)
	b.m.droppedTopicLimit = c(`edgegate_mqtt_messages_dropped_total{reason="topic_limit"}`)
	b.m.tooLarge = c(`edgegate_mqtt_messages_too_large_total`)
	b.m.overloadDisconnects = c(`edgegate_mqtt_overload_disconnects_total`)
	b.m.refusedMaxConns = c(`edgegate_mqtt_connections_refused_total{reason="max_connections"}`)
	b.m.refusedOrigin = c(`edgegate_mqtt_connections_refused_total{reason="origin"}`)
	b.m.refusedHandshake = c(`edgegate_mqtt_connections_refused_total{reason="tls_handshake"}`)
	b.m.rateDelayed = c(`edgegate_mqtt_publish_delayed_total`)
	b.m.rateDisconnects = c(`edgegate_mqtt_rate_limit_disconnects_total`)
	b.m.fairDelayed = c(`edgegate_mqtt_fair_share_delayed_total`)
	set.GetOrCreateGauge(`edgegate_mqtt_fair_share_per_second`, b.fair.current)
	b.m.refusedSubscriptions = c(`edgegate_mqtt_subscriptions_refused_total{reason="topic_limit"}`)
	b.m.qos2Resends = c(`edgegate_mqtt_qos2_resends_total`)
	b.m.budgetTimeouts = c(`edgegate_mqtt_packet_budget_timeouts_total`)
	b.m.retainRefusedCount = c(`edgegate_mqtt_retained_refused_total{reason="count"}`)
	b.m.retainRefusedBytes = c(`edgegate_mqtt_retained_refused_total{reason="bytes"}`)
	set.GetOrCreateGauge(`edgegate_mqtt_clients_connected`, func() float64 { return float64(b.Clients()) })
	set.GetOrCreateGauge(`edgegate_mqtt_retained_messages`, func() float64 { n, _ := b.retained.stats(); return float64(n) })
	set.GetOrCreateGauge(`edgegate_mqtt_retained_bytes`, func() float64 { _, n := b.retained.stats(); return float64(n) })
}

// deviceLogs are the Warn lines about what devices do wrong, each at most
// once per logEvery with the count of the ones in between (ratelog): a
// misbehaving device cannot flood the log. Every event is also counted.
type deviceLogs struct {
	maxConns, origin, handshake, topic, subscribe, rate, budget, retain, fair *ratelog.Limiter
}

// logEvery is the least time between two lines of one kind of deviceLogs.
const logEvery = 10 * time.Second

func newDeviceLogs(log *slog.Logger) deviceLogs {
	l := func(msg string) *ratelog.Limiter { return ratelog.New(log, slog.LevelWarn, msg, logEvery) }
	return deviceLogs{
		maxConns:  l("connection refused: max_connections reached"),
		origin:    l("websocket connection refused: origin not allowed"),
		handshake: l("tls handshake failed"),
		topic:     l("publish refused: topic not allowed"),
		subscribe: l("subscription refused: filter over the topic limits"),
		rate:      l("client disconnected: publish rate exceeded for too long"),
		budget:    l("connection closed: no memory to read its packet in time"),
		retain:    l("message not retained: retained limit reached (delivered, not kept)"),
		fair:      l("publisher slowed to its fair share: the uplink delivers less than devices publish"),
	}
}

// stop writes what the limiters hold back and stops their timers.
func (d deviceLogs) stop() {
	for _, l := range []*ratelog.Limiter{d.maxConns, d.origin, d.handshake, d.topic, d.subscribe, d.rate, d.budget, d.retain, d.fair} {
		l.Stop()
	}
}

// Run binds every listener, serves until ctx is done, then disconnects all
// clients (MQTT 5 clients get DISCONNECT 0x8B server shutting down), closes
// the listeners and returns once every goroutine it started has exited and
// no Handle call is running. The ctx given to Handle is cancelled as soon as
// ctx is done.
//
// If a listener cannot be bound, Run returns an error naming it and Ready
// is never closed. Run may be called once.
func (b *Broker) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("mqtt: Run called twice")
	}
	lns, err := b.bind(ctx)
	if err != nil {
		return err
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.handlerCtx = hctx // before any connection is accepted

	if err := b.srv.Serve(); err != nil { // no listeners of mochi's: starts its $SYS loop
		for _, l := range lns {
			_ = l.ln.Close()
		}
		return fmt.Errorf("start mqtt server: %w", err)
	}
	var loops sync.WaitGroup
	for _, l := range lns {
		if l.http != nil {
			loops.Go(func() { b.serveWebsocket(l) })
		} else {
			loops.Go(func() { b.serveTCP(l) })
		}
		b.log.Info("mqtt listener started", "listener", l.cfg.ID, "type", l.cfg.Type, "address", l.ln.Addr().String())
	}
	close(b.ready)

	<-ctx.Done()
	b.log.Info("mqtt broker stopping", "clients", b.Clients())
	cancel()
	close(b.stop)
	for _, l := range lns {
		if l.http != nil {
			_ = l.http.Close() // closes the listener and not-yet-upgraded connections
		} else {
			_ = l.ln.Close()
		}
	}
	b.conns.shut()
	b.disconnectAll()
	b.conns.closeAll()
	loops.Wait()
	b.conns.wait()
	_ = b.srv.Close() // stops mochi's $SYS loop; its client wait group is at zero by now
	b.logs.stop()
	b.stopAudit()
	b.log.Info("mqtt broker stopped")
	return nil
}

func (b *Broker) bind(ctx context.Context) ([]*boundListener, error) {
	var lc net.ListenConfig
	lns := make([]*boundListener, 0, len(b.cfg.Listeners))
	for _, c := range b.cfg.Listeners {
		ln, err := lc.Listen(ctx, "tcp", c.Address)
		if err != nil {
			for _, l := range lns {
				_ = l.ln.Close()
			}
			return nil, fmt.Errorf("mqtt listener %s: %w", c.ID, err)
		}
		l := &boundListener{cfg: c, ln: ln, tls: b.tls[c.ID]}
		if c.Type == TypeWebsocket || c.Type == TypeWSS {
			l.http = b.websocketServer(l)
		}
		lns = append(lns, l)
		b.mu.Lock()
		b.addrs[c.ID] = ln.Addr()
		b.mu.Unlock()
	}
	return lns, nil
}

// disconnectAll tells every connected client the server is going away:
// DISCONNECT 0x8B for MQTT 5, a closed connection for MQTT 3.1.1 (whose
// servers must not send DISCONNECT). A client whose connection does not take
// the write within shutdownGrace is closed by the caller's closeAll.
func (b *Broker) disconnectAll() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, cl := range b.srv.Clients.GetAll() {
			if cl.Net.Inline || cl.Closed() {
				continue
			}
			if cl.Properties.ProtocolVersion == 5 {
				_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			} else {
				cl.Stop(packets.ErrServerShuttingDown)
			}
		}
	}()
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.conns.closeAll() // unblocks writes stuck on slow clients
		<-done
	}
}

// Ready is closed once every listener is bound and accepting.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// Addr returns the bound address of listener id, or nil if id is unknown or
// Run has not bound it yet. Useful with port 0.
func (b *Broker) Addr(id string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[id]
}

// Clients returns the number of connected clients.
func (b *Broker) Clients() int {
	return int(atomic.LoadInt64(&b.srv.Info.ClientsConnected))
}

// Publish sends a gateway-originated message to local MQTT subscribers (for
// local actuation). It is never handed to the Handler. qos caps the QoS of
// the delivery (subscribers receive min(qos, their subscription QoS));
// retain keeps it as the topic's retained message. topic must be a valid
// topic name: non-empty, UTF-8, without wildcards or NUL, not starting with
// '$'. Publish works whether or not Run is active (with no subscribers the
// message is only retained, if asked).
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	if qos > 2 {
		return fmt.Errorf("publish to %q: qos must be 0, 1 or 2, got %d", topic, qos)
	}
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

func checkTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("empty topic")
	case len(topic) > math.MaxUint16:
		return errors.New("topic longer than 65535 bytes")
	case !utf8.ValidString(topic):
		return errors.New("topic is not valid UTF-8")
	case strings.ContainsAny(topic, "+#\x00"):
		return errors.New("topic contains a wildcard or NUL")
	case strings.HasPrefix(topic, "$"):
		return errors.New("topics starting with '$' are reserved")
	}
	return nil
}
