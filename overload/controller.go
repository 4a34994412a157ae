package overload

import "time"

// Sample is what the gateway measured at one instant.
type Sample struct {
	At time.Time
	// Publishes counts the device publishes read since start (what the
	// limit limits).
	Publishes uint64
	Uplinks   []Uplink
}

// Uplink is one uplink's side of a Sample.
type Uplink struct {
	Name string
	// Backlog counts the events in its queue (in flight included).
	Backlog int64
	// Delivered counts the events it delivered since start.
	Delivered uint64
	// Failing: its last send failed. LastFailure: when a send last failed
	// (zero: never).
	Failing     bool
	LastFailure time.Time
}

// Decision is what Step concluded.
type Decision struct {
	// Limit is the device publishes per second the gateway should read,
	// all devices together; 0: no limit.
	Limit float64
	// Uplink is the uplink whose delivery rate set Limit, Drain that rate
	// (events/s) and Backlog its backlog; "" when Limit is 0.
	Uplink  string
	Drain   float64
	Backlog int64
	// Changed: Limit went from 0 to a limit, or back, at this step.
	Changed bool
}

// Tuning of the control loop.
const (
	// horizon is how fast the backlog built by an overload is brought
	// back to its goal: the limit gives up (excess - goal)/horizon
	// events per second of the drain rate.
	horizon = 2.0 // seconds
	// smoothing is the weight of the newest measurement in the moving
	// averages of drain rate and events per publish.
	smoothing = 0.5
	// calmSteps is how many steps in a row the overload's backlog must
	// stay under an eighth of the target before the limit is lifted.
	calmSteps = 5
	// stallSteps is how many steps in a row an uplink with a backlog may
	// deliver nothing (one slow request) before that counts as an outage.
	stallSteps = 3
)

// Controller turns samples into intake limits. Feed it a Sample about
// every second (Step); the zero value is ready to use.
type Controller struct {
	prev    Sample
	started bool
	limited bool
	uplinks map[string]*uplinkState
}

// uplinkState is what the controller learnt of one uplink.
type uplinkState struct {
	drain   float64 // delivered events/s, smoothed
	perPub  float64 // events appended to its queue per device publish, smoothed
	excess  float64 // backlog built up while it delivered without failing
	engaged bool
	calm    int // steps in a row with excess under goal/8
	stalled int // steps in a row it delivered nothing while holding a backlog
	limit   float64
}

// Step takes the next sample and returns the intake limit.
//
// For each uplink that delivers without failing, the backlog it gains is
// overload ("excess"; an outage's backlog is not, and during an outage
// the uplink is left out). Once the excess exceeds cfg.TargetDelay at
// the uplink's measured delivery rate, the limit is the publish rate at
// which that uplink's queue receives what it delivers, less what brings
// the excess back to half the target within a few seconds (never less
// than half of what it delivers); with several uplinks, the lowest. It is
// lifted when an excess stays near zero (the devices slowed down) or the
// uplink fails (an outage): a send fails, or it delivers nothing for
// stallSteps steps in a row while holding a backlog.
func (c *Controller) Step(cfg Config, s Sample) Decision {
	if !c.started || !cfg.FairShare {
		c.reset(s)
		c.started = cfg.FairShare
		return c.decide(Decision{})
	}
	prev := c.prev
	c.prev = s
	dt := s.At.Sub(prev.At).Seconds()
	if dt <= 0 {
		return c.decide(Decision{})
	}
	publishes := rate(s.Publishes, prev.Publishes, dt)
	seen := make(map[string]bool, len(s.Uplinks))
	var d Decision
	for _, u := range s.Uplinks {
		seen[u.Name] = true
		p, ok := find(prev.Uplinks, u.Name)
		if !ok {
			continue // new: measured from the next step
		}
		st := c.uplinks[u.Name]
		if st == nil {
			st = &uplinkState{}
			c.uplinks[u.Name] = st
		}
		limit, ok := st.step(cfg, u, p, prev.At, publishes, dt)
		if ok && (d.Limit == 0 || limit < d.Limit) {
			d = Decision{Limit: limit, Uplink: u.Name, Drain: st.drain, Backlog: u.Backlog}
		}
	}
	for name := range c.uplinks {
		if !seen[name] {
			delete(c.uplinks, name)
		}
	}
	return c.decide(d)
}

// step updates what is known of uplink u (p: its previous sample, taken
// at prevAt) and returns the intake limit it needs; ok is false when it
// needs none.
func (st *uplinkState) step(cfg Config, u, p Uplink, prevAt time.Time, publishes, dt float64) (limit float64, ok bool) {
	delivered := rate(u.Delivered, p.Delivered, dt)
	st.stalled++
	if delivered > 0 || u.Backlog == 0 || p.Backlog == 0 {
		st.stalled = 0
	}
	if u.Failing || u.LastFailure.After(prevAt) || st.stalled >= stallSteps {
		*st = uplinkState{drain: st.drain, perPub: st.perPub, stalled: st.stalled}
		return 0, false
	}
	if st.stalled > 0 { // a request in flight longer than a step: keep the last limit
		st.excess = min(max(0, st.excess+float64(u.Backlog-p.Backlog)), float64(u.Backlog))
		return st.limit, st.engaged && st.limit > 0
	}
	grown := float64(u.Backlog - p.Backlog)
	st.drain = smooth(st.drain, delivered)
	if publishes > 0 {
		st.perPub = smooth(st.perPub, max(0, grown/dt+delivered)/publishes)
	}
	st.excess = min(max(0, st.excess+grown), float64(u.Backlog))
	goal := cfg.TargetDelay.Seconds() * st.drain
	switch {
	case !st.engaged && st.excess > goal && st.drain > 0:
		st.engaged, st.calm = true, 0
	case st.engaged && st.excess < goal/8:
		if st.calm++; st.calm >= calmSteps {
			st.engaged, st.calm = false, 0
		}
	default:
		st.calm = 0
	}
	if !st.engaged || st.perPub <= 0 {
		st.limit = 0
		return 0, false
	}
	events := st.drain - (st.excess-goal/2)/horizon
	// Never below half the drain: devices within their share at that
	// rate are not slowed while the excess is worked off.
	events = min(max(events, st.drain/2), 2*st.drain)
	st.limit = events / st.perPub
	return st.limit, true
}

// decide records whether the gateway is limited and marks a change.
func (c *Controller) decide(d Decision) Decision {
	limited := d.Limit > 0
	d.Changed = limited != c.limited
	c.limited = limited
	return d
}

// reset forgets everything but the sample.
func (c *Controller) reset(s Sample) {
	c.prev = s
	c.uplinks = make(map[string]*uplinkState)
}

func find(list []Uplink, name string) (Uplink, bool) {
	for _, u := range list {
		if u.Name == name {
			return u, true
		}
	}
	return Uplink{}, false
}

// rate is (now - before)/dt; 0 when the counter went back (a restart).
func rate(now, before uint64, dt float64) float64 {
	if now < before {
		return 0
	}
	return float64(now-before) / dt
}

func smooth(avg, x float64) float64 {
	if avg == 0 {
		return x
	}
	return avg + smoothing*(x-avg)
}
