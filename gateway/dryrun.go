package gateway

import (
	"time"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/rules"
)

// DryRun is the pipeline's mapping and rules without a buffer, a broker or
// uplinks: `edgegate rules test --events` runs messages through it. It
// takes the same steps Handle takes before storing an event, with the
// configuration's events and rules sections. Rule state (windows, changed,
// stale timers) carries from one call to the next, as in a running
// gateway. It is safe for concurrent use, though rule state then depends on
// the order of the calls.
type DryRun struct{ l *live }

// NewDryRun runs the mapper and rule set of a compiled configuration; it
// takes over the rule set's state, so c is not for a Gateway as well.
func NewDryRun(c *Compiled) *DryRun { return &DryRun{l: newLive(c)} }

// Message maps m, received at now, and evaluates the rules on the event,
// as Handle does. It returns the rules' input and decision; the error is
// cloudevent.ErrUnmatched for a topic the events section drops.
func (d *DryRun) Message(m mqtt.Message, now time.Time) (rules.Input, rules.Decision, error) {
	e, err := d.l.mapMessage(m, now, false, nil)
	if err != nil {
		return rules.Input{}, rules.Decision{}, err
	}
	in, dec := d.l.evaluate(&e, m.Topic, m.ClientID, now)
	return in, dec, nil
}

// Event evaluates the rules on an event that was already mapped; its
// mqtttopic extension, if any, is the topic the rules see.
func (d *DryRun) Event(e *cloudevent.Event, now time.Time) (rules.Input, rules.Decision) {
	topic, _ := e.Extension(cloudevent.ExtTopic)
	return d.l.evaluate(e, topic.Str(), "", now)
}

// Tick closes rule windows and raises stale events due at now, as the
// running gateway does once a second.
func (d *DryRun) Tick(now time.Time) []rules.Emitted { return d.l.rules.Tick(now) }
