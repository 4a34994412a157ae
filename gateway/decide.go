package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/rules"
	"github.com/edgegate/edgegate/uplink"
)

// rulesDeadLetter is the buffer queue of events a rule dead-letters.
const rulesDeadLetter = "deadletter.rules"

// decisionRecords turns a rules decision into buffer records: the event to
// its routes (every uplink by default) unless dropped or dead-lettered, and
// each emitted event to its own routes.
func (g *Gateway) decisionRecords(e event.Event, d rules.Decision, all []string) ([]buffer.Record, error) {
	var recs []buffer.Record
	switch {
	case d.Drop:
		g.ruleDropped.Inc()
	case d.DeadLetter != "":
		data, err := encodeDecided(e, d)
		if err != nil {
			return nil, err
		}
		data, err = uplink.SetExtensions(data, map[string]any{uplink.ExtError: d.DeadLetter})
		if err != nil {
			return nil, fmt.Errorf("dead-letter event: %w", err)
		}
		g.ruleDeadLettered.Inc()
		recs = append(recs, buffer.Record{Queue: rulesDeadLetter, Data: data})
	default:
		data, err := encodeDecided(e, d)
		if err != nil {
			return nil, err
		}
		recs = routeRecords(recs, data, d.Routes, all)
	}
	return g.emitRecords(recs, d.Emits, all)
}

// emitRecords appends the records of events emitted by rules.
func (g *Gateway) emitRecords(recs []buffer.Record, emits []rules.Emitted, all []string) ([]buffer.Record, error) {
	for _, em := range emits {
		ce, err := em.Event.CloudEvent()
		if err != nil {
			return nil, fmt.Errorf("emitted event %s: %w", em.Event.Type, err)
		}
		data, err := ce.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode emitted event %s: %w", em.Event.Type, err)
		}
		g.ruleEmitted.Inc()
		recs = routeRecords(recs, data, em.Routes, all)
	}
	return recs, nil
}

// encodeDecided encodes the event as the rules left it.
func encodeDecided(e event.Event, d rules.Decision) ([]byte, error) {
	if d.Changed {
		ce, err := d.Event.CloudEvent()
		if err != nil {
			return nil, fmt.Errorf("event changed by rules is invalid: %w", err)
		}
		e = ce
	}
	data, err := e.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return data, nil
}

// routeRecords appends one record per route: the named uplinks, or every
// uplink (all, queue names) when routes is nil.
func routeRecords(recs []buffer.Record, data []byte, routes, all []string) []buffer.Record {
	if routes == nil {
		for _, q := range all {
			recs = append(recs, buffer.Record{Queue: q, Data: data})
		}
		return recs
	}
	for _, name := range routes {
		recs = append(recs, buffer.Record{Queue: queueName(name), Data: data})
	}
	return recs
}

// publishLocal sends a rule's MQTT message to local subscribers.
func (g *Gateway) publishLocal(p rules.Publish) {
	if err := g.broker.Publish(p.Topic, p.Payload, p.Retain, p.QoS); err != nil {
		g.rulePublishFailed.Inc()
		g.log.Warn("rule publish failed", "topic", p.Topic, "err", err)
		return
	}
	g.rulePublished.Inc()
}

// tickRules closes rule windows and raises stale-device events once a
// second, appending what they emit durably.
func (g *Gateway) tickRules(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			l := g.live.Load()
			emits := l.rules.Tick(now)
			if len(emits) == 0 {
				continue
			}
			recs, err := g.emitRecords(nil, emits, l.routes)
			if err != nil {
				g.tickLost.Add(len(emits))
				g.log.Error("rule window or stale event is invalid", "err", err)
				continue
			}
			if err := g.buf.Append(ctx, recs, true); err != nil && ctx.Err() == nil {
				g.tickLost.Add(len(emits))
				g.log.Error("rule window or stale events not stored: buffer refused them", "events", len(emits), "err", err)
			}
		}
	}
}
