package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edgegate/edgegate/cloudevent"
)

// errClosed is returned by Send after Close.
var errClosed = errors.New("uplink closed")

// mqttSender publishes each record as one MQTT 3.1.1 message (QoS 1) in the
// CloudEvents MQTT binding's structured mode: the payload is the event in
// the JSON format. MQTT 3.1.1 has no way to signal a content type, so
// structured JSON is the only mode; receivers must expect
// application/cloudevents+json.
//
// The paho client connects on the first Send and keeps its goroutines until
// Close. CleanSession is false and unacknowledged publishes live in paho's
// store (a FileStore under StateDir, or memory), so paho resends them after
// a reconnect. Send
// still counts a record delivered only when its own token completed with a
// PUBACK during one unbroken connection: paho completes the tokens of
// resent messages without waiting for their PUBACK (#563), so a reconnect
// during Send makes it fail (retryable) and the forward loop sends the batch
// again (duplicates keep their id).
type mqttSender struct {
	name     string
	safeURL  string
	topic    *topicTemplate
	window   int
	timeout  time.Duration
	maxBytes int
	opts     *paho.ClientOptions
	log      *slog.Logger

	// epoch changes whenever paho may have completed tokens without a
	// PUBACK: a connection loss, a reconnect, a resume from the store.
	epoch atomic.Uint64

	mu     sync.Mutex // guards client and closed; held while connecting
	client paho.Client
	closed bool

	events      *metrics.Counter
	published   *metrics.Counter
	failures    *metrics.Counter
	connLost    *metrics.Counter
	storeErrors *metrics.Counter
	duration    *metrics.Histogram
}

var (
	_ Sender     = (*mqttSender)(nil)
	_ paho.Store = (*guardedStore)(nil)
)

func newMQTTSender(cfg Config, log *slog.Logger, m *metrics.Set) (*mqttSender, error) {
	var errs []error
	topic, err := newTopicTemplate(cfg.MQTT.Topic, cfg.GatewayID)
	if err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
	}
	if usesGatewayID(cfg.MQTT.ClientID) && cfg.GatewayID == "" {
		errs = append(errs, errors.New("client_id: uses {gateway_id} but the gateway id is not set"))
	}
	fileStore := cfg.MQTT.SessionStore != SessionStoreMemory
	if fileStore && cfg.MQTT.StateDir == "" {
		errs = append(errs, errors.New("state_dir: is required for type mqtt with session_store file"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, errors.Join(errs...))
	}
	var store paho.Store = paho.NewMemoryStore()
	if fileStore {
		if err := os.MkdirAll(cfg.MQTT.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("uplink %q: state_dir: %w", cfg.Name, err)
		}
		store = paho.NewFileStore(cfg.MQTT.StateDir)
	}
	tlsCfg, err := buildTLSConfig(cfg.MQTT.TLS, log)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, err)
	}

	clientID := cfg.MQTT.ClientID
	if clientID == "" {
		clientID = "edgegate-" + cfg.GatewayID + "-" + cfg.Name
		if cfg.GatewayID == "" {
			clientID = "edgegate-" + cfg.Name
		}
	}
	clientID = strings.ReplaceAll(clientID, "{gateway_id}", cfg.GatewayID)

	u, _ := url.Parse(cfg.MQTT.URL) // checked by Validate
	name := cfg.Name
	s := &mqttSender{
		name:        name,
		safeURL:     u.Scheme + "://" + u.Host,
		topic:       topic,
		window:      cfg.MQTT.MaxInFlight,
		timeout:     cfg.MQTT.Timeout,
		maxBytes:    int(cfg.Batch.MaxBytes),
		log:         log,
		events:      m.GetOrCreateCounter(fmt.Sprintf(`edgegate_uplink_events_sent_total{uplink=%q}`, name)),
		published:   m.GetOrCreateCounter(fmt.Sprintf(`edgegate_uplink_mqtt_publishes_total{uplink=%q}`, name)),
		failures:    m.GetOrCreateCounter(fmt.Sprintf(`edgegate_uplink_mqtt_send_failures_total{uplink=%q}`, name)),
		connLost:    m.GetOrCreateCounter(fmt.Sprintf(`edgegate_uplink_mqtt_connection_lost_total{uplink=%q}`, name)),
		storeErrors: m.GetOrCreateCounter(fmt.Sprintf(`edgegate_uplink_mqtt_store_errors_total{uplink=%q}`, name)),
		duration:    m.GetOrCreateHistogram(fmt.Sprintf(`edgegate_uplink_request_duration_seconds{uplink=%q}`, name)),
	}

	o := paho.NewClientOptions()
	o.AddBroker(cfg.MQTT.URL)
	o.SetClientID(clientID)
	o.SetProtocolVersion(4) // 3.1.1: all paho v1 speaks
	o.SetCleanSession(false)
	o.SetAutoReconnect(true)
	o.SetConnectRetry(false) // Send connects; a failed first connect is a retryable Send error
	o.SetMaxReconnectInterval(cfg.Retry.Max)
	o.SetConnectTimeout(cfg.MQTT.Timeout)
	o.SetWriteTimeout(cfg.MQTT.Timeout)
	o.SetKeepAlive(cfg.MQTT.KeepAlive)
	o.SetPingTimeout(min(cfg.MQTT.Timeout, cfg.MQTT.KeepAlive))
	o.SetOrderMatters(false)
	o.SetResumeSubs(false)
	o.SetMaxResumePubInFlight(cfg.MQTT.MaxInFlight)
	o.SetStore(&guardedStore{inner: store, onResume: s.bump, log: log, errors: s.storeErrors})
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	if b := cfg.MQTT.Auth.Basic; b.Username != "" {
		pw, err := newSecret(b.Password, b.PasswordFile, log)
		if err != nil {
			return nil, fmt.Errorf("uplink %q: auth.basic.password_file: %w", cfg.Name, err)
		}
		user := b.Username
		o.SetCredentialsProvider(func() (string, string) { return user, pw.get() })
	}
	o.SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
		s.bump()
		log.Debug("mqtt uplink reconnecting", "url", s.safeURL)
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		s.bump()
		s.connLost.Inc()
		log.Warn("mqtt uplink connection lost: reconnecting", "url", s.safeURL, "err", err)
	})
	o.SetOnConnectHandler(func(paho.Client) {
		log.Info("mqtt uplink connected", "url", s.safeURL, "client_id", clientID)
	})
	s.opts = o
	return s, nil
}

// bump marks that tokens may have completed without a PUBACK.
func (s *mqttSender) bump() { s.epoch.Add(1) }

// Close disconnects from the broker and stops paho's goroutines. Messages
// awaiting a PUBACK stay in the store and are resent after the next connect.
func (s *mqttSender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.client != nil {
		s.client.Disconnect(250)
	}
	return nil
}

// connect returns a client that is connected or reconnecting on its own.
func (s *mqttSender) connect(ctx context.Context) (paho.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.client != nil && s.client.IsConnected() {
		return s.client, nil
	}
	if s.client == nil {
		s.client = paho.NewClient(s.opts)
	}
	tok := s.client.Connect()
	timer := time.NewTimer(s.timeout + time.Second)
	defer timer.Stop()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-timer.C:
		return nil, fmt.Errorf("no CONNACK within %s", s.timeout)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return s.client, nil
}

// Send implements Sender: it publishes every record with QoS 1, at most
// MaxInFlight unacknowledged at a time, and returns nil only when each got
// its PUBACK on one unbroken connection.
func (s *mqttSender) Send(ctx context.Context, events []*cloudevent.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &Error{Err: fmt.Errorf("publish: %w", err), Retryable: true}
	}
	topics := make([]string, len(events))
	// paho keeps a payload after Publish returns (outbound queue, resend):
	// each gets its own slice.
	payloads := make([][]byte, len(events))
	for i, e := range events {
		t, err := s.topic.topicFor(e)
		if err != nil {
			return &Error{Err: &RecordError{Index: i, Err: err}}
		}
		topics[i] = t
		payloads[i] = cloudevent.AppendJSON(make([]byte, 0, 512+len(e.Data)*4/3), e)
		if n := len(payloads[i]); n > s.maxBytes {
			return &Error{Err: &RecordError{Index: i, Err: fmt.Errorf("%d bytes exceeds batch.max_bytes (%d)", n, s.maxBytes)}}
		}
	}

	start := time.Now()
	err := s.publish(ctx, topics, payloads)
	s.duration.Update(time.Since(start).Seconds())
	if err != nil {
		s.failures.Inc()
		s.log.Debug("mqtt publish failed", "events", len(events), "err", err)
		return err
	}
	s.events.Add(len(events))
	s.log.Debug("mqtt published", "events", len(events), "duration", time.Since(start))
	return nil
}

func (s *mqttSender) publish(ctx context.Context, topics []string, records [][]byte) error {
	client, err := s.connect(ctx)
	if err != nil {
		return &Error{Err: fmt.Errorf("connect %s: %w", s.safeURL, err), Retryable: true}
	}
	if !client.IsConnectionOpen() {
		return &Error{Err: fmt.Errorf("publish %s: not connected (reconnecting)", s.safeURL), Retryable: true}
	}
	epoch := s.epoch.Load()

	type pending struct {
		tok  paho.Token
		sent time.Time
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	wait := func(i int, p pending) error {
		d := time.Until(p.sent.Add(s.timeout))
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-p.tok.Done():
			if err := p.tok.Error(); err != nil {
				return &Error{Err: fmt.Errorf("publish %s: record %d: %w", s.safeURL, i, err), Retryable: true}
			}
			return nil
		case <-ctx.Done():
			return &Error{Err: fmt.Errorf("publish %s: %w", s.safeURL, context.Cause(ctx)), Retryable: true}
		case <-timer.C:
			return &Error{Err: fmt.Errorf("publish %s: record %d: no PUBACK within %s", s.safeURL, i, s.timeout), Retryable: true}
		}
	}

	window := make([]pending, 0, min(s.window, len(records)))
	first := 0 // index of window[0]
	for i, r := range records {
		if len(window) == s.window {
			if err := wait(first, window[0]); err != nil {
				return err
			}
			window = window[1:]
			first++
		}
		tok := client.Publish(topics[i], 1, false, r)
		s.published.Inc()
		window = append(window, pending{tok, time.Now()})
	}
	for j, p := range window {
		if err := wait(first+j, p); err != nil {
			return err
		}
	}
	if s.epoch.Load() != epoch {
		return &Error{Err: fmt.Errorf("publish %s: connection lost during send: sending again", s.safeURL), Retryable: true}
	}
	return nil
}

// guardedStore wraps paho's FileStore: it turns the panics FileStore raises
// on file errors (a full or read-only disk) into a log line and a metric,
// and bumps the sender's epoch when paho lists the store to resume, because
// resuming completes waiting tokens without their PUBACK. A message that
// could not be stored is still sent; if the connection drops before its
// PUBACK, its Send times out and the forward loop sends it again.
type guardedStore struct {
	inner    paho.Store
	onResume func()
	log      *slog.Logger
	errors   *metrics.Counter

	once sync.Once
}

func (g *guardedStore) guard(op string) {
	if r := recover(); r != nil {
		g.errors.Inc()
		g.once.Do(func() {
			g.log.Error("mqtt session store failed: unacknowledged messages may not survive a reconnect (the buffer still holds them)",
				"op", op, "err", fmt.Sprint(r))
		})
	}
}

// Open implements paho.Store.
func (g *guardedStore) Open() {
	defer g.guard("open")
	g.inner.Open()
}

// Put implements paho.Store.
func (g *guardedStore) Put(key string, m packets.ControlPacket) {
	defer g.guard("put")
	g.inner.Put(key, m)
}

// Get implements paho.Store.
func (g *guardedStore) Get(key string) (p packets.ControlPacket) {
	defer g.guard("get")
	return g.inner.Get(key)
}

// All implements paho.Store. paho calls it when it resumes a session.
func (g *guardedStore) All() (keys []string) {
	g.onResume()
	defer g.guard("all")
	return g.inner.All()
}

// Del implements paho.Store.
func (g *guardedStore) Del(key string) {
	defer g.guard("del")
	g.inner.Del(key)
}

// Close implements paho.Store.
func (g *guardedStore) Close() {
	defer g.guard("close")
	g.inner.Close()
}

// Reset implements paho.Store.
func (g *guardedStore) Reset() {
	defer g.guard("reset")
	g.inner.Reset()
}
