package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/pahoclient"
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

	subMu  sync.Mutex // guards subs and subGen; held while subscribing
	subs   map[string]*subscription
	subGen int64 // counts connection losses (mqttsub.go)

	events      *metrics.Counter
	published   *metrics.Counter
	failures    *metrics.Counter
	connLost    *metrics.Counter
	storeErrors *metrics.Counter
	duration    *metrics.PrometheusHistogram
}

var _ Sender = (*mqttSender)(nil)

// newMQTTSender checks what only New can check, opens the session store and
// prepares the paho options; the client itself is made by the first Send.
func newMQTTSender(cfg Config, log *slog.Logger, m *metrics.Set) (*mqttSender, error) {
	topic, err := checkMQTT(cfg)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, err)
	}
	store, err := newSessionStore(cfg)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, err)
	}
	tlsCfg, err := buildTLSConfig(cfg.MQTT.TLS, log)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, err)
	}
	creds, err := mqttCredentials(cfg.MQTT.Auth.Basic, log)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, err)
	}

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
		events:      m.GetOrCreateCounter(metricname.With("edgegate_uplink_events_sent_total", "uplink", name)),
		published:   m.GetOrCreateCounter(metricname.With("edgegate_uplink_mqtt_publishes_total", "uplink", name)),
		failures:    m.GetOrCreateCounter(metricname.With("edgegate_uplink_mqtt_send_failures_total", "uplink", name)),
		connLost:    m.GetOrCreateCounter(metricname.With("edgegate_uplink_mqtt_connection_lost_total", "uplink", name)),
		storeErrors: m.GetOrCreateCounter(metricname.With("edgegate_uplink_mqtt_store_errors_total", "uplink", name)),
		duration:    m.GetOrCreatePrometheusHistogramExt(metricname.With("edgegate_uplink_request_duration_seconds", "uplink", name), requestBuckets()),
	}
	clientID := mqttClientID(cfg)
	o := mqttClientOptions(cfg, clientID)
	o.SetStore(&guardedStore{inner: store, onResume: s.bump, log: log, errors: s.storeErrors})
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	if creds != nil {
		o.SetCredentialsProvider(creds)
	}
	s.watchConnection(o, clientID)
	o.SetDefaultPublishHandler(s.dispatch)
	s.opts = o
	return s, nil
}

// checkMQTT checks the settings Validate cannot (the gateway fills in the
// gateway id and state directory) and compiles the topic template.
func checkMQTT(cfg Config) (*topicTemplate, error) {
	var errs []error
	topic, err := newTopicTemplate(cfg.MQTT.Topic, cfg.GatewayID)
	if err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
	}
	if usesGatewayID(cfg.MQTT.ClientID) && cfg.GatewayID == "" {
		errs = append(errs, errors.New("client_id: uses {gateway_id} but the gateway id is not set"))
	}
	if cfg.MQTT.SessionStore != SessionStoreMemory && cfg.MQTT.StateDir == "" {
		errs = append(errs, errors.New("state_dir: is required for type mqtt with session_store file"))
	}
	return topic, errors.Join(errs...)
}

// mqttClientID is the configured client id with {gateway_id} filled in, or
// edgegate-<gateway id>-<uplink name>.
func mqttClientID(cfg Config) string {
	id := cfg.MQTT.ClientID
	if id == "" {
		id = "edgegate-" + cfg.GatewayID + "-" + cfg.Name
		if cfg.GatewayID == "" {
			id = "edgegate-" + cfg.Name
		}
	}
	return strings.ReplaceAll(id, "{gateway_id}", cfg.GatewayID)
}

// mqttCredentials returns the username and the password (re-read from its
// file when that changes), or nil without a username.
func mqttCredentials(b BasicAuth, log *slog.Logger) (paho.CredentialsProvider, error) {
	if b.Username == "" {
		return nil, nil
	}
	pw, err := newSecret(b.Password, b.PasswordFile, log)
	if err != nil {
		return nil, fmt.Errorf("auth.basic.password_file: %w", err)
	}
	user := b.Username
	return func() (string, string) { return user, pw.get() }, nil
}

// mqttClientOptions are the protocol and timing settings of the paho
// client: MQTT 3.1.1, a persistent session, paho's own reconnects.
func mqttClientOptions(cfg Config, clientID string) *paho.ClientOptions {
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
	return o
}

// watchConnection logs and counts connection changes, and bumps the epoch
// on every loss and reconnect attempt.
func (s *mqttSender) watchConnection(o *paho.ClientOptions, clientID string) {
	o.SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
		s.bump()
		s.log.Debug("mqtt uplink reconnecting", "url", s.safeURL)
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		s.bump()
		s.lostSubscriptions()
		s.connLost.Inc()
		s.log.Warn("mqtt uplink connection lost: reconnecting", "url", s.safeURL, "err", err)
	})
	o.SetOnConnectHandler(func(c paho.Client) {
		s.log.Info("mqtt uplink connected", "url", s.safeURL, "client_id", clientID)
		if err := s.subscribeAll(c); err != nil {
			s.log.Warn("mqtt uplink: subscribing again after connecting failed", "err", err)
		}
	})
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
		s.client = pahoclient.New(s.opts) // resume cannot race with the writer
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
