package configchannel

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// MQTTConfig is remote_config.mqtt: receive configurations over the
// connection of an MQTT uplink.
type MQTTConfig struct {
	// Uplink names the mqtt uplink whose connection is used; "" disables
	// the channel.
	Uplink string `yaml:"uplink"`
	// Topic is subscribed with QoS 1; {gateway_id} is filled in.
	Topic string `yaml:"topic"`
	// StatusTopic receives the result of every document (QoS 1, not
	// retained); {gateway_id} is filled in.
	StatusTopic string `yaml:"status_topic"`
}

// DefaultMQTTConfig is remote_config.mqtt's defaults.
func DefaultMQTTConfig() MQTTConfig {
	return MQTTConfig{Topic: "gateways/{gateway_id}/config", StatusTopic: "gateways/{gateway_id}/config/status"}
}

// Validate checks the section; paths are relative to it. Whether Uplink
// names an mqtt uplink is the gateway's check.
func (c MQTTConfig) Validate() error {
	var errs yamlconf.List
	for _, f := range []struct{ key, topic string }{{"topic", c.Topic}, {"status_topic", c.StatusTopic}} {
		switch {
		case f.topic == "":
			errs.Add(yamlconf.Key(f.key), "must not be empty")
		case strings.ContainsAny(f.topic, "+#\x00"):
			errs.Add(yamlconf.Key(f.key), "must be a topic name, without the wildcards + and #")
		}
	}
	if c.Topic != "" && c.Topic == c.StatusTopic {
		errs.Add(yamlconf.Key("status_topic"), "must differ from topic")
	}
	return errs.Err()
}

// Conn is the MQTT uplink's connection (uplink.Subscriber).
type Conn interface {
	// Subscribe keeps topic subscribed with QoS 1 across reconnects and
	// hands each message to h; it connects if needed and may be called
	// again after an error.
	Subscribe(ctx context.Context, topic string, h func(payload []byte, retained bool)) error
	// Publish sends payload with QoS 1, not retained, and waits for the
	// PUBACK.
	Publish(ctx context.Context, topic string, payload []byte) error
}

// Status is the JSON document published on the status topic for every
// document received.
type Status struct {
	GatewayID string    `json:"gateway_id"`
	Result    string    `json:"result"` // applied, unchanged, rejected
	Version   int64     `json:"version,omitempty"`
	Hash      string    `json:"hash,omitempty"`
	Reason    string    `json:"reason,omitempty"` // why it was rejected
	Errors    []string  `json:"errors,omitempty"`
	Retained  bool      `json:"retained,omitempty"` // the document was a retained message
	Time      time.Time `json:"time"`
}

// MQTTStatus is the MQTT channel's state, for /status.
type MQTTStatus struct {
	Topic      string    `json:"topic"`
	Subscribed bool      `json:"subscribed"`
	LastError  string    `json:"last_error,omitempty"`
	Last       *Status   `json:"last,omitempty"`
	LastChange time.Time `json:"last_change,omitzero"`
}

// mqttQueue bounds the documents waiting for the apply path.
const mqttQueue = 8

type mqttMessage struct {
	payload  []byte
	retained bool
}

// MQTTChannel receives configurations on a topic of an MQTT uplink's
// connection, hands each to the apply path and publishes the result on
// the status topic. Counted in edgegate_config_mqtt_total{result}
// (applied, unchanged, rejected, dropped: the queue was full) and
// edgegate_config_mqtt_status_failures_total.
type MQTTChannel struct {
	gatewayID     string
	topic, status string
	conn          Conn
	apply         ApplyFunc
	log           *slog.Logger
	queue         chan mqttMessage
	resub         chan struct{} // Resubscribe

	results        map[string]*metrics.Counter
	statusFailures *metrics.Counter

	mu    sync.Mutex // guards state
	state MQTTStatus
}

// NewMQTT builds the channel for cfg (validated) on conn; it starts
// nothing. log may be nil; m may be nil.
func NewMQTT(cfg MQTTConfig, gatewayID string, conn Conn, apply ApplyFunc, log *slog.Logger, m *metrics.Set) *MQTTChannel {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewSet()
	}
	expand := func(t string) string { return strings.ReplaceAll(t, "{gateway_id}", gatewayID) }
	c := &MQTTChannel{
		gatewayID:      gatewayID,
		topic:          expand(cfg.Topic),
		status:         expand(cfg.StatusTopic),
		conn:           conn,
		apply:          apply,
		log:            log,
		queue:          make(chan mqttMessage, mqttQueue),
		resub:          make(chan struct{}, 1),
		results:        map[string]*metrics.Counter{},
		statusFailures: m.GetOrCreateCounter("edgegate_config_mqtt_status_failures_total"),
	}
	for _, r := range []string{"applied", "unchanged", "rejected", "dropped"} {
		c.results[r] = m.GetOrCreateCounter(metricname.With("edgegate_config_mqtt_total", "result", r))
	}
	c.state.Topic = c.topic
	return c
}

// Run subscribes (retrying with backoff up to a minute until the uplink
// connects) and applies the documents that arrive, one at a time, until
// ctx is done. It returns nil when ctx is done.
func (c *MQTTChannel) Run(ctx context.Context) error {
	if !c.subscribe(ctx) {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.resub:
			if !c.subscribe(ctx) {
				return nil
			}
		case m := <-c.queue:
			c.handle(ctx, m)
		}
	}
}

// Resubscribe makes Run subscribe again, through Conn: the gateway calls
// it when the uplink's connection was replaced (a changed uplink).
func (c *MQTTChannel) Resubscribe() {
	select {
	case c.resub <- struct{}{}:
	default:
	}
}

// subscribe subscribes, retrying until it succeeds (true) or ctx is done.
func (c *MQTTChannel) subscribe(ctx context.Context) bool {
	for n := 1; ; n++ {
		err := c.conn.Subscribe(ctx, c.topic, c.receive)
		c.mu.Lock()
		c.state.Subscribed = err == nil
		c.state.LastError = ""
		if err != nil {
			c.state.LastError = err.Error()
		}
		c.mu.Unlock()
		if err == nil {
			c.log.Info("config channel subscribed", "topic", c.topic, "status_topic", c.status)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if n == 1 || n%10 == 0 {
			c.log.Warn("config channel: cannot subscribe yet: retrying", "topic", c.topic, "attempts", n, "err", err)
		}
		if !sleep(ctx, jittered(backoff(n, time.Second, time.Minute), 0.1)) {
			return false
		}
	}
}

// receive is the subscription's handler: it queues the message, or drops
// it when the queue is full (the sender may send it again; a retained
// config comes back on the next connection).
func (c *MQTTChannel) receive(payload []byte, retained bool) {
	select {
	case c.queue <- mqttMessage{payload: append([]byte(nil), payload...), retained: retained}:
	default:
		c.results["dropped"].Inc()
		c.log.Warn("config channel: too many documents waiting: dropped one", "topic", c.topic)
	}
}

// handle applies one document and publishes its status.
func (c *MQTTChannel) handle(ctx context.Context, m mqttMessage) {
	st := Status{GatewayID: c.gatewayID, Retained: m.retained}
	var res Result
	var err error
	if len(m.payload) > MaxDocument {
		err = &Rejection{Reason: "invalid", Err: fmt.Errorf("%s: document of %d bytes is larger than %d", c.topic, len(m.payload), MaxDocument)}
	} else {
		res, err = c.apply(ctx, Update{Source: SourceMQTT, Origin: c.topic, Data: m.payload})
	}
	switch {
	case err != nil:
		st.Result, st.Reason, st.Errors = "rejected", rejectionReason(err), errorLines(err)
		c.log.Warn("config from MQTT rejected: keeping the running configuration", "topic", c.topic, "reason", st.Reason, "err", err)
	case res.Unchanged:
		st.Result = "unchanged"
	default:
		st.Result = "applied"
		c.log.Info("config from MQTT applied", "topic", c.topic, "version", res.Version, "hash", res.Hash)
	}
	st.Version, st.Hash = res.Version, res.Hash
	st.Time = time.Now().UTC()
	c.results[st.Result].Inc()
	c.mu.Lock()
	c.state.Last = &st
	if st.Result != "unchanged" {
		c.state.LastChange = st.Time
	}
	c.mu.Unlock()

	body, _ := json.Marshal(st)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.conn.Publish(pctx, c.status, body); err != nil {
		c.statusFailures.Inc()
		c.log.Warn("config channel: publishing the status failed", "topic", c.status, "err", err)
	}
}

// Status reports the channel's state.
func (c *MQTTChannel) Status() MQTTStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state
	if s.Last != nil {
		last := *s.Last
		s.Last = &last
	}
	return s
}
