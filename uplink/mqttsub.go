package uplink

import (
	"context"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Subscriber is implemented by the MQTT uplink: the gateway's MQTT config
// channel receives documents and answers over the uplink's own connection,
// so a gateway behind NAT needs no inbound port.
type Subscriber interface {
	// Subscribe keeps topic (no wildcards) subscribed with QoS 1 on every
	// connection of the uplink, subscribing again after each reconnect,
	// and hands each message on it to h. It connects when the uplink is
	// not connected yet and returns the connect or subscribe error (the
	// subscription stays registered; call again to retry). h runs on a
	// paho goroutine, one per message, and must not block for long; the
	// message is acknowledged when h returns.
	Subscribe(ctx context.Context, topic string, h func(payload []byte, retained bool)) error
	// Publish sends payload to topic with QoS 1, not retained, and waits
	// for its PUBACK or ctx. Safe for concurrent use with Send.
	Publish(ctx context.Context, topic string, payload []byte) error
}

var _ Subscriber = (*mqttSender)(nil)

// subscription is one topic Subscribe registered.
type subscription struct {
	handle func(payload []byte, retained bool)
	// gen is the connection generation it was last subscribed in; -1 for
	// never.
	gen int64
}

// dispatch is paho's default publish handler: it hands a message to the
// subscription of its topic.
func (s *mqttSender) dispatch(_ paho.Client, m paho.Message) {
	s.subMu.Lock()
	sub := s.subs[m.Topic()]
	s.subMu.Unlock()
	if sub == nil {
		s.log.Debug("mqtt uplink: message on a topic without a subscription", "topic", m.Topic())
		return
	}
	sub.handle(m.Payload(), m.Retained())
}

// Subscribe implements Subscriber.
func (s *mqttSender) Subscribe(ctx context.Context, topic string, h func(payload []byte, retained bool)) error {
	s.subMu.Lock()
	if s.subs == nil {
		s.subs = map[string]*subscription{}
	}
	s.subs[topic] = &subscription{handle: h, gen: -1}
	s.subMu.Unlock()
	client, err := s.connect(ctx)
	if err != nil {
		return fmt.Errorf("connect %s: %w", s.safeURL, err)
	}
	return s.subscribeAll(client)
}

// lostSubscriptions marks every subscription as due again: a new
// connection may have a new session.
func (s *mqttSender) lostSubscriptions() {
	s.subMu.Lock()
	s.subGen++
	s.subMu.Unlock()
}

// subscribeAll subscribes every topic not yet subscribed on the current
// connection. client may be paho's inner client (OnConnect) or ours.
// Subscribing once per connection matters: a broker sends a topic's
// retained message again on every SUBSCRIBE.
func (s *mqttSender) subscribeAll(client paho.Client) error {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for topic, sub := range s.subs {
		if sub.gen == s.subGen {
			continue
		}
		tok := client.Subscribe(topic, 1, nil) // nil: dispatch handles it
		if !tok.WaitTimeout(s.timeout) {
			return fmt.Errorf("subscribe %s on %s: no SUBACK within %s", topic, s.safeURL, s.timeout)
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("subscribe %s on %s: %w", topic, s.safeURL, err)
		}
		if st, ok := tok.(*paho.SubscribeToken); ok && st.Result()[topic] == 0x80 {
			return fmt.Errorf("subscribe %s on %s: refused by the broker", topic, s.safeURL)
		}
		sub.gen = s.subGen
		s.log.Info("mqtt uplink subscribed", "topic", topic)
	}
	return nil
}

// Publish implements Subscriber.
func (s *mqttSender) Publish(ctx context.Context, topic string, payload []byte) error {
	client, err := s.connect(ctx)
	if err != nil {
		return fmt.Errorf("connect %s: %w", s.safeURL, err)
	}
	tok := client.Publish(topic, 1, false, payload)
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", topic, context.Cause(ctx))
	case <-timer.C:
		return fmt.Errorf("publish %s: no PUBACK within %s", topic, s.timeout)
	}
}
