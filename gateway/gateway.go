package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"

	"github.com/edgegate/edgegate/access"
	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/configsign"
	"github.com/edgegate/edgegate/internal/certfile"
	"github.com/edgegate/edgegate/internal/configstore"
	"github.com/edgegate/edgegate/internal/ratelog"
	"github.com/edgegate/edgegate/internal/tail"
	"github.com/edgegate/edgegate/internal/yamlconf"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/rules"
	"github.com/edgegate/edgegate/uplink"
)

// Gateway is one running edgegate.
type Gateway struct {
	cfg        Config // as started; parts that cannot change live
	configPath string
	log        *slog.Logger
	level      *slog.LevelVar
	metrics    *metrics.Set

	// What a reload may change, swapped atomically: each message uses one
	// snapshot from start to end.
	live   atomic.Pointer[live]
	cfgPtr atomic.Pointer[Config] // the configuration in effect

	// Applies run one at a time under reloadMu (apply.go); running is the
	// configuration in effect with its version and document, store keeps
	// them on disk, localHash is the local file's hash when it was last
	// applied (guarded by reloadMu).
	reloadMu       sync.Mutex
	running        atomic.Pointer[appliedConfig]
	configs        *configstore.Store
	localHash      string
	configVerifier configVerifier
	health         healthWatch
	lastReloadOK   atomic.Bool
	lastReloadTime atomic.Int64
	reloadFailures *metrics.Counter

	// The buffer, once open (see bufferstate.go): until then bufDown says
	// why not, and bufOpened is closed when it opens.
	buf          atomic.Pointer[buffer.Buffer]
	bufDown      atomic.Pointer[string]
	bufOpened    chan struct{}
	bufAvailable *metrics.Gauge
	bufRetry     time.Duration // first wait before opening the buffer again
	broker       *mqtt.Broker
	verifier     *access.Verifier // device secrets; its cache outlives reloads
	// The running uplinks (uplinks.go): replaced by applyUplinks, one
	// change at a time (upMu, which also guards fwd).
	uplinks atomic.Pointer[uplinkSet]
	upMu    sync.Mutex
	fwd     *forwarding // nil until Run starts the forwarders
	// handoffsAbandoned counts the batches in hand a changed or removed
	// uplink abandoned at the handoff bound; removedDropped the events of
	// removed uplinks' backlogs a reload dropped.
	handoffsAbandoned *metrics.Counter
	removedDropped    *metrics.Counter
	chans             channels   // config channels (channels.go)
	tail              *tail.Tail // the recent appends, for the status page's live tail

	version string                     // Options.Version
	help    func(family string) string // HELP texts of /metrics
	started time.Time                  // when New was called

	ready   atomic.Bool
	adminLn net.Listener
	// adminAuth checks admin tokens (nil: the routes are open); a reload
	// with other tokens swaps it.
	adminAuth         atomic.Pointer[adminAuth]
	verifyToken       tokenVerifier
	adminCert         *certfile.Pair // admin.tls; nil: plain HTTP
	adminClientCAs    *x509.CertPool // admin.tls.client_ca_file; nil: no client certificates
	adminAuthFailures map[string]*metrics.Counter
	adminThrottled    *metrics.Counter
	adminFailLog      *ratelog.Limiter

	ingested  *metrics.Counter
	unmatched *metrics.Counter
	rejected  *metrics.Counter
	overload  *metrics.Counter
	noBuffer  *metrics.Counter
	resends   *metrics.Counter

	overloadEvery time.Duration // how often limitIntake recomputes the limit
	// intakeLimit is math.Float64bits of the intake limit limitIntake
	// set last (device publishes/s; 0: none).
	intakeLimit atomic.Uint64

	propsDropped map[string]*metrics.Counter // by cloudevent.Drop… reason

	ruleDropped       *metrics.Counter
	ruleDeadLettered  *metrics.Counter
	ruleEmitted       *metrics.Counter
	rulePublished     *metrics.Counter
	rulePublishFailed *metrics.Counter
	tickLost          *metrics.Counter
}

// Options are the gateway's dependencies from main.
type Options struct {
	Log     *slog.Logger
	Metrics *metrics.Set // nil: a private set
	// ConfigPath is the file the admin endpoint's POST /-/reload reads;
	// "" disables that endpoint.
	ConfigPath string
	// LogLevel, when set, is adjusted by reloads of log.level.
	LogLevel *slog.LevelVar
	// Version is the binary's version, reported by /status.
	Version string

	// verifyToken replaces adminTokenVerifier (tests).
	verifyToken tokenVerifier
}

// live holds the parts of the configuration a reload replaces.
type live struct {
	mapper *cloudevent.Mapper
	rules  *rules.Set
	routes []string // queue names of the default route: every uplink

	configHash string    // Compiled.hash
	loadedAt   time.Time // when this configuration was applied

	keys []configsign.PublicKey // remote_config's public keys (signatures.go)
}

// newLive takes the reloadable parts of a compiled configuration.
func newLive(c *Compiled) *live {
	l := &live{mapper: c.mapper, rules: c.rules, configHash: c.hash, loadedAt: time.Now(), keys: c.keys}
	for _, u := range c.Config.Uplinks {
		l.routes = append(l.routes, queueName(u.Name))
	}
	return l
}

// apply makes prepared parts current. Rule state (windows, deadbands,
// stale timers) of rules with the same name carries over.
func (g *Gateway) apply(l *live) {
	if old := g.live.Load(); old != nil {
		l.rules.CarryStateFrom(old.rules)
	}
	g.live.Store(l)
}

func (g *Gateway) current() Config { return *g.cfgPtr.Load() }

// New opens the buffer and builds every component of a compiled
// configuration (LoadFile, Parse or Compile). It starts no goroutines; Run
// does. A buffer that cannot be opened is not an error: the gateway runs
// without it, refusing events, until Run manages to open it
// (bufferstate.go).
func New(c *Compiled, opts Options) (*Gateway, error) {
	if c == nil {
		return nil, errors.New("gateway: no configuration")
	}
	g := newGateway(c.Config, opts)
	g.apply(newLive(c))
	g.startApplied(c)
	if err := g.openAdmin(c.Config.Admin); err != nil {
		return nil, err
	}
	if err := g.openSenders(c.uplinks); err != nil {
		return nil, err
	}
	if err := g.openBuffer(); err != nil {
		g.bufferDown(err)
	}
	var err error
	g.broker, err = mqtt.New(c.Config.MQTT, g, g.log.With("component", "mqtt"), g.metrics)
	if err != nil {
		g.closeSenders()
		if buf := g.buffer(); buf != nil {
			buf.Close()
		}
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	g.setAccess(c.access)
	g.registerGauges()
	return g, nil
}

// newGateway fills in the options' defaults and the gateway's counters.
func newGateway(cfg Config, opts Options) *Gateway {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	level := opts.LogLevel
	if level == nil {
		level = new(slog.LevelVar)
	}
	adminLog := log.With("component", "admin")
	g := &Gateway{
		verifyToken: opts.verifyToken,
		adminAuthFailures: map[string]*metrics.Counter{
			"missing":   set.NewCounter(`edgegate_admin_auth_failures_total{reason="missing"}`),
			"malformed": set.NewCounter(`edgegate_admin_auth_failures_total{reason="malformed"}`),
			"invalid":   set.NewCounter(`edgegate_admin_auth_failures_total{reason="invalid"}`),
		},
		adminThrottled: set.NewCounter(`edgegate_admin_auth_throttled_total`),
		adminFailLog:   ratelog.New(adminLog, slog.LevelWarn, "admin authentication failed", adminFailureLogInterval),

		cfg:            cfg,
		configPath:     opts.ConfigPath,
		tail:           tail.New(),
		version:        opts.Version,
		help:           helpOf(),
		started:        time.Now(),
		overloadEvery:  overloadEvery,
		log:            log,
		verifier:       access.NewVerifier(access.VerifierOptions{}),
		level:          level,
		metrics:        set,
		reloadFailures: set.NewCounter(`edgegate_config_reload_failures_total`),
		ingested:       set.NewCounter(`edgegate_events_ingested_total`),
		resends:        set.NewCounter(`edgegate_mqtt_resends_recognised_total`),
		unmatched:      set.NewCounter(`edgegate_events_dropped_total{reason="unmatched_topic"}`),
		rejected:       set.NewCounter(`edgegate_events_dropped_total{reason="invalid"}`),
		overload:       set.NewCounter(`edgegate_events_refused_total{reason="buffer_full"}`),
		noBuffer:       set.NewCounter(`edgegate_events_refused_total{reason="buffer_unavailable"}`),
		bufAvailable:   set.NewGauge(`edgegate_buffer_available`, nil),
		bufOpened:      make(chan struct{}),
		bufRetry:       bufferRetry,
		propsDropped: map[string]*metrics.Counter{
			cloudevent.DropReserved:  set.NewCounter(`edgegate_events_properties_dropped_total{reason="reserved"}`),
			cloudevent.DropDuplicate: set.NewCounter(`edgegate_events_properties_dropped_total{reason="duplicate"}`),
			cloudevent.DropCollision: set.NewCounter(`edgegate_events_properties_dropped_total{reason="collision"}`),
		},

		ruleDropped:       set.NewCounter(`edgegate_events_dropped_total{reason="rule"}`),
		ruleDeadLettered:  set.NewCounter(`edgegate_events_dead_lettered_total{reason="rule"}`),
		ruleEmitted:       set.NewCounter(`edgegate_rules_events_emitted_total`),
		rulePublished:     set.NewCounter(`edgegate_rules_publishes_total{result="ok"}`),
		rulePublishFailed: set.NewCounter(`edgegate_rules_publishes_total{result="error"}`),
		tickLost:          set.NewCounter(`edgegate_rules_emitted_lost_total`),
		handoffsAbandoned: set.NewCounter(`edgegate_uplink_handoffs_abandoned_total`),
		removedDropped:    set.NewCounter(`edgegate_events_dropped_total{reason="uplink_removed"}`),
	}
	if g.verifyToken == nil {
		g.verifyToken = adminTokenVerifier()
	}
	g.cfgPtr.Store(&cfg)
	g.lastReloadOK.Store(true)
	return g
}

// openAdmin prepares the admin endpoint's token checks and certificate.
func (g *Gateway) openAdmin(a AdminConfig) error {
	auth, err := newAdminAuth(a.Tokens, g.verifyToken, g.log.With("component", "admin"))
	if err != nil {
		return err
	}
	g.adminAuth.Store(auth)
	if a.TLS.enabled() {
		if g.adminCert, err = certfile.Open(a.TLS.CertFile, a.TLS.KeyFile, g.log.With("component", "admin")); err != nil {
			return yamlconf.Nest(yamlconf.Key("admin").Key("tls"), err)
		}
		if a.TLS.ClientCAFile != "" {
			if g.adminClientCAs, err = certfile.LoadCAs(a.TLS.ClientCAFile); err != nil {
				return yamlconf.Nest(yamlconf.Key("admin").Key("tls").Key("client_ca_file"), err)
			}
		}
	}
	return nil
}

// openSenders builds a sender and a forwarder per uplink.
func (g *Gateway) openSenders(uplinks []uplink.Config) error {
	g.uplinks.Store(&uplinkSet{})
	p, err := g.prepareUplinks(uplinks)
	if err != nil {
		return err
	}
	p.initial = true
	p.commit(context.Background(), uplinkChange{})
	return nil
}

// registerGauges exports the gateway's state and the rules' metrics.
func (g *Gateway) registerGauges() {
	g.registerBuildInfo()
	g.metrics.NewGauge(`edgegate_config_last_reload_successful`, func() float64 {
		if g.lastReloadOK.Load() {
			return 1
		}
		return 0
	})
	g.metrics.RegisterMetricsWriter(func(w io.Writer) { g.live.Load().rules.WritePrometheus(w) })
	g.metrics.NewGauge(`edgegate_overload_intake_limit_per_second`, func() float64 {
		return math.Float64frombits(g.intakeLimit.Load())
	})
	g.metrics.NewGauge(`edgegate_ready`, func() float64 {
		if len(g.notReady()) == 0 {
			return 1
		}
		return 0
	})
}

// closeSenders releases the senders' connections (paho goroutines, idle
// HTTP connections).
func (g *Gateway) closeSenders() {
	g.upMu.Lock()
	defer g.upMu.Unlock()
	for _, f := range g.uplinks.Load().list {
		closeSender(g, f.sender, f.cfg.Name)
	}
}

func queueName(uplinkName string) string      { return "uplink." + uplinkName }
func deadLetterName(uplinkName string) string { return "deadletter." + uplinkName }

// Broker returns the embedded MQTT broker (tests read its bound address).
func (g *Gateway) Broker() *mqtt.Broker { return g.broker }

// Ready is closed once devices can connect: the MQTT listeners are bound.
// /readyz also wants the buffer open and accepting events.
func (g *Gateway) Ready() <-chan struct{} { return g.broker.Ready() }

// AdminAddr returns the bound admin address once Run has started it, or nil.
func (g *Gateway) AdminAddr() net.Addr {
	if g.adminLn == nil {
		return nil
	}
	return g.adminLn.Addr()
}

// Handle is the pipeline for one device message. It runs on the publishing
// client's goroutine before its acknowledgement: nil means the event is in
// the buffer (fsync'd for QoS ≥ 1).
func (g *Gateway) Handle(ctx context.Context, m mqtt.Message) error {
	buf := g.buffer()
	if buf == nil {
		g.noBuffer.Inc()
		return fmt.Errorf("%w: buffer unavailable", mqtt.ErrOverloaded)
	}
	var marks []buffer.Mark
	if m.QoS > 0 && len(m.ClientID) <= maxMarkedClientID {
		mark := resendMark(m)
		if m.Dup {
			// A resend: if we stored this very message (same client, packet
			// id, topic and payload) and only its ack was lost, ack it
			// again without storing a second event with a new id.
			if v, ok := buf.Mark(mark.Key); ok && v == mark.Value {
				g.resends.Inc()
				return nil
			}
		}
		marks = []buffer.Mark{mark}
	}
	return g.ingest(ctx, m, false, marks)
}

// Will is the pipeline for a device's will, which the broker published
// because the device's connection ended abnormally: the device's own
// message, mapped by the topic templates and marked edgegatewill, through
// the rules into the buffer. Nothing acknowledges it (mqtt counts an
// error).
func (g *Gateway) Will(ctx context.Context, m mqtt.Message) error {
	return g.ingest(ctx, m, true, nil)
}

// Presence stores the event of a device connecting or disconnecting, when
// events.presence.enabled; it goes through the rules like any event.
func (g *Gateway) Presence(ctx context.Context, p mqtt.Presence) error {
	l := g.live.Load()
	if !l.mapper.PresenceEnabled() {
		return nil
	}
	e, err := l.mapper.Presence(cloudevent.Presence{
		Connected: p.Connected, ClientID: p.ClientID, Username: p.Username, AuthMethod: p.AuthMethod,
		Listener: p.Listener, RemoteAddr: p.RemoteAddr, ProtocolVersion: p.ProtocolVersion,
		Reason: p.Reason, Detail: p.Detail, Time: p.Time,
	})
	if err != nil {
		return err
	}
	return g.store(ctx, l, &e, "", p.ClientID, nil, p.Time)
}

var _ mqtt.PresenceHandler = (*Gateway)(nil)

// ingest maps a device's message (will: its will) and stores the event,
// with marks; see Handle.
func (g *Gateway) ingest(ctx context.Context, m mqtt.Message, will bool, marks []buffer.Mark) error {
	l := g.live.Load()
	now := time.Now()
	e, err := l.mapMessage(m, now, will, g.propertyDropped)
	if errors.Is(err, cloudevent.ErrUnmatched) {
		g.unmatched.Inc()
		g.log.Debug("dropped message on unmatched topic", "topic", m.Topic, "client_id", m.ClientID)
		return nil
	}
	if err != nil {
		g.rejected.Inc()
		return fmt.Errorf("%w: map topic %q: %v", mqtt.ErrRejected, m.Topic, err)
	}
	return g.store(ctx, l, &e, m.Topic, m.ClientID, marks, now)
}

// store runs the rules on an event from topic and clientID, appends what
// they decide to the buffer (with marks) and then makes their local
// publishes.
func (g *Gateway) store(ctx context.Context, l *live, e *cloudevent.Event, topic, clientID string, marks []buffer.Mark, now time.Time) error {
	recs, publishes, err := g.records(l, e, topic, clientID, now)
	if err != nil {
		g.rejected.Inc()
		return fmt.Errorf("%w: topic %q: %v", mqtt.ErrRejected, topic, err)
	}
	if len(recs) > 0 {
		buf := g.buffer()
		if buf == nil {
			g.noBuffer.Inc()
			return fmt.Errorf("%w: buffer unavailable", mqtt.ErrOverloaded)
		}
		if err := buf.Append(ctx, recs, true, marks...); err != nil {
			if errors.Is(err, buffer.ErrDamaged) {
				g.noBuffer.Inc()
				return fmt.Errorf("%w: %v", mqtt.ErrOverloaded, err)
			}
			if errors.Is(err, buffer.ErrFull) || errors.Is(err, buffer.ErrClosed) {
				g.overload.Inc()
				return fmt.Errorf("%w: %v", mqtt.ErrOverloaded, err)
			}
			return fmt.Errorf("buffer event: %w", err)
		}
		g.ingested.Inc()
		g.tail.Add(recs, now)
	}
	// Local actuation happens once the device's event is safe, with or
	// without a cloud link.
	for _, p := range publishes {
		g.publishLocal(p)
	}
	return nil
}

// records runs the rules on an event from topic and clientID and returns
// the buffer records they decide and their local publishes: the part of
// store that touches no I/O (its allocations are budgeted by
// TestPerEventAllocations).
func (g *Gateway) records(l *live, e *cloudevent.Event, topic, clientID string, now time.Time) ([]buffer.Record, []rules.Publish, error) {
	if l.rules.Empty() {
		return routeRecords(nil, cloudevent.Encode(e), nil, l.routes), nil, nil
	}
	_, d := l.evaluate(e, topic, clientID, now)
	for _, re := range d.Errors {
		g.log.Debug("rule failed", "rule", re.Rule, "topic", topic, "client_id", clientID, "err", re.Err)
	}
	recs, err := g.decisionRecords(e, d, l.routes)
	if err != nil {
		return nil, nil, err
	}
	return recs, d.Publishes, nil
}

// propertyDropped counts a user property that did not become an
// extension (cloudevent.Message.DroppedProperty).
func (g *Gateway) propertyDropped(m cloudevent.Message, p cloudevent.Property, reason string) {
	if c := g.propsDropped[reason]; c != nil {
		c.Inc()
	}
	g.log.Debug("user property dropped", "client_id", m.ClientID, "topic", m.Topic, "key", p.Key, "reason", reason)
}

// maxMarkedClientID bounds the client ids whose messages get a resend
// mark (MQTT allows 64 KiB ids; real ones are short).
const maxMarkedClientID = 1024

// resendMark identifies a stored QoS 1/2 message by client and packet id,
// with a hash of topic and payload as its value.
func resendMark(m mqtt.Message) buffer.Mark {
	key := make([]byte, 0, len(m.ClientID)+3)
	key = append(key, m.ClientID...)
	key = append(key, 0, byte(m.PacketID>>8), byte(m.PacketID))
	h := fnv.New64a()
	h.Write([]byte(m.Topic))
	h.Write([]byte{0})
	h.Write(m.Payload)
	return buffer.Mark{Key: key, Value: h.Sum64()}
}

// mapMessage maps a device's message (will: its will), received at now,
// to its event: the first step of Handle (and of DryRun). The event's
// data shares m.Payload. dropped, if not nil, hears of every user
// property that did not become an extension.
func (l *live) mapMessage(m mqtt.Message, now time.Time, will bool,
	dropped func(cloudevent.Message, cloudevent.Property, string)) (cloudevent.Event, error) {
	var props []cloudevent.Property
	if len(m.UserProperties) > 0 {
		props = make([]cloudevent.Property, len(m.UserProperties))
		for i, p := range m.UserProperties {
			props[i] = cloudevent.Property{Key: p.Key, Value: p.Value}
		}
	}
	return l.mapper.Map(cloudevent.Message{
		Topic:           m.Topic,
		Payload:         m.Payload,
		QoS:             m.QoS,
		ClientID:        m.ClientID,
		Username:        m.Username,
		AuthMethod:      m.AuthMethod,
		ContentType:     m.ContentType,
		UserProperties:  props,
		Received:        now,
		Will:            will,
		DroppedProperty: dropped,
	})
}

// evaluate runs the rules on an event from topic and clientID at now: the
// second step of Handle (when there are rules) and of DryRun.
func (l *live) evaluate(e *cloudevent.Event, topic, clientID string, now time.Time) (rules.Input, rules.Decision) {
	in := rules.Input{Event: rules.FromRecord(e), Topic: topic, ClientID: clientID}
	return in, l.rules.Evaluate(in, now)
}

// Run starts every component and blocks until ctx is cancelled or one of
// them fails. Shutdown order: stop MQTT intake, let the forwarders finish
// their in-flight sends within ShutdownTimeout, then stop and close the
// buffer. Every goroutine has exited when Run returns.
func (g *Gateway) Run(ctx context.Context) (err error) {
	if g.cfg.Admin.Listen != "" {
		g.warnAdmin()
		g.adminLn, err = net.Listen("tcp", g.cfg.Admin.Listen)
		if err != nil {
			if buf := g.buffer(); buf != nil {
				buf.Close()
			}
			return fmt.Errorf("admin.listen %s: %w", g.cfg.Admin.Listen, err)
		}
	}
	stopBuffer := g.startBuffer(ctx)
	defer func() { err = stopBuffer(err) }()
	defer g.startHealth(ctx)()
	defer g.startChannels(ctx)()

	// Forwarders stop fetching when intake has stopped; their in-flight
	// sends get ShutdownTimeout to finish.
	fwd := g.startForwarding(ctx)
	defer func() {
		g.stopForwarding(fwd)
		fwd.abandonAll()
		<-fwd.wait()
	}()

	// Intake (MQTT and admin) runs until ctx is done or a component fails.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	intakeDone := g.startIntake(runCtx)

	var runErr error
	select {
	case runErr = <-intakeDone:
		runErr = errors.Join(runErr, g.finishSends(fwd))
	case runErr = <-fwd.failed:
		// A forwarder only returns early on a fatal buffer error.
		g.ready.Store(false)
		cancelRun()
		runErr = errors.Join(runErr, <-intakeDone)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// startBuffer runs the buffer (opening it first if New could not) with its
// own context: it outlives intake and forwarders. The returned stop closes
// the senders, stops and closes the buffer and returns err, or the
// buffer's error when err is nil.
func (g *Gateway) startBuffer(ctx context.Context) (stop func(err error) error) {
	bufCtx, stopBuf := context.WithCancel(context.WithoutCancel(ctx))
	bufDone := make(chan error, 1)
	go func() { bufDone <- g.runBuffer(bufCtx) }()
	return func(err error) error {
		g.closeSenders()
		stopBuf()
		if berr := <-bufDone; berr != nil && err == nil {
			err = fmt.Errorf("buffer: %w", berr)
		}
		if buf := g.buffer(); buf != nil {
			if cerr := buf.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close buffer: %w", cerr)
			}
		}
		g.log.Info("stopped")
		return err
	}
}

// startIntake runs the broker, the admin endpoint and the rules' ticker
// until ctx is done or one of them fails; the channel receives the error.
func (g *Gateway) startIntake(ctx context.Context) <-chan error {
	intake, intakeCtx := errgroup.WithContext(ctx)
	intake.Go(func() error { return g.broker.Run(intakeCtx) })
	if g.adminLn != nil {
		intake.Go(func() error { return g.serveAdmin(intakeCtx) })
	}
	intake.Go(func() error {
		select {
		case <-g.broker.Ready():
			g.ready.Store(true)
			g.log.Info("edgegate ready", "gateway_id", g.cfg.GatewayID, "admin", g.cfg.Admin.Listen,
				"buffer", g.cfg.Buffer.Dir, "uplinks", len(g.uplinks.Load().list))
		case <-intakeCtx.Done():
		}
		return nil
	})
	intake.Go(func() error { return g.tickRules(intakeCtx) })
	intake.Go(func() error { return g.limitIntake(intakeCtx) })
	done := make(chan error, 1)
	go func() { done <- intake.Wait() }()
	return done
}

// finishSends stops the forwarders fetching once intake has stopped and
// gives their in-flight sends ShutdownTimeout; then it abandons them, to be
// delivered again after a restart. It returns a forwarder's fatal error.
func (g *Gateway) finishSends(fwd *forwarding) error {
	g.ready.Store(false)
	shutdownTimeout := g.current().ShutdownTimeout
	g.log.Info("shutting down: intake stopped, finishing in-flight sends", "timeout", shutdownTimeout)
	g.stopForwarding(fwd)
	timer := time.NewTimer(shutdownTimeout)
	defer timer.Stop()
	done := fwd.wait()
	select {
	case <-done:
	case <-timer.C:
		g.log.Warn("shutdown timeout: abandoning in-flight sends; they are delivered again after restart")
		fwd.abandonAll()
		<-done
	}
	return fwd.err()
}
