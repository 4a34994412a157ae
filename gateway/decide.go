package gateway

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/rules"
)

// rulesDeadLetter is the buffer queue of events a rule dead-letters.
const rulesDeadLetter = "deadletter.rules"

// decisionRecords turns a rules decision into buffer records: the event to
// its routes (every uplink by default) unless dropped or dead-lettered, and
// each emitted event to its own routes.
func (g *Gateway) decisionRecords(e *cloudevent.Event, d rules.Decision, all []string) ([]buffer.Record, error) {
	var recs []buffer.Record
	switch {
	case d.Drop:
		g.ruleDropped.Inc()
	case d.DeadLetter != "":
		rec, err := decided(e, d)
		if err != nil {
			return nil, err
		}
		rec.Extensions = slices.Clone(rec.Extensions) // e's stay as they are
		rec.SetExtension(cloudevent.ExtError, cloudevent.String(d.DeadLetter))
		g.ruleDeadLettered.Inc()
		recs = append(recs, buffer.Record{Queue: rulesDeadLetter, Data: cloudevent.Encode(&rec)})
	default:
		rec, err := decided(e, d)
		if err != nil {
			return nil, err
		}
		recs = routeRecords(recs, cloudevent.Encode(&rec), d.Routes, all)
	}
	return g.emitRecords(recs, d.Emits, all)
}

// emitRecords appends the records of events emitted by rules.
func (g *Gateway) emitRecords(recs []buffer.Record, emits []rules.Emitted, all []string) ([]buffer.Record, error) {
	for _, em := range emits {
		rec, err := em.Event.Record()
		if err != nil {
			return nil, fmt.Errorf("emitted event %s: %w", em.Event.Type, err)
		}
		g.ruleEmitted.Inc()
		recs = routeRecords(recs, cloudevent.Encode(&rec), em.Routes, all)
	}
	return recs, nil
}

// decided returns the event as the rules left it.
func decided(e *cloudevent.Event, d rules.Decision) (cloudevent.Event, error) {
	if !d.Changed {
		return *e, nil
	}
	rec, err := d.Event.Record()
	if err != nil {
		return rec, fmt.Errorf("event changed by rules is invalid: %w", err)
	}
	return rec, nil
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
			buf := g.buffer()
			if buf == nil {
				g.tickLost.Add(len(emits))
				continue
			}
			if err := buf.Append(ctx, recs, true); err != nil {
				if ctx.Err() == nil {
					g.tickLost.Add(len(emits))
					g.log.Error("rule window or stale events not stored: buffer refused them", "events", len(emits), "err", err)
				}
				continue
			}
			g.tail.Add(recs, now)
		}
	}
}
