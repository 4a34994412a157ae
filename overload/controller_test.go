package overload

import (
	"math"
	"testing"
	"time"
)

// sim is one uplink behind the gateway, stepped a second at a time:
// devices offer publishes, the gateway takes at most the limit, each
// publish makes perPub events in the queue and the uplink delivers up to
// capacity events a second while up.
type sim struct {
	c        Controller
	cfg      Config
	now      time.Time
	pubs     uint64
	backlog  int64
	sent     uint64
	lastFail time.Time
	limit    float64
}

func newSim() *sim {
	s := &sim{cfg: DefaultConfig(), now: time.Unix(1_000_000, 0)}
	s.c.Step(s.cfg, s.sample(false))
	return s
}

func (s *sim) sample(failing bool) Sample {
	return Sample{At: s.now, Publishes: s.pubs, Uplinks: []Uplink{{
		Name: "cloud", Backlog: s.backlog, Delivered: s.sent, Failing: failing, LastFailure: s.lastFail,
	}}}
}

// second runs one second: offered publishes/s, perPub events each,
// capacity events/s delivered (0: the uplink is down; -1: its request is
// still in flight, nothing delivered and nothing failed). It returns the
// decision taken at its end.
func (s *sim) second(offered, perPub, capacity float64) Decision {
	taken := offered
	if s.limit > 0 {
		taken = min(taken, s.limit)
	}
	s.pubs += uint64(taken)
	s.backlog += int64(taken * perPub)
	out := int64(min(max(capacity, 0), float64(s.backlog)))
	s.backlog -= out
	s.sent += uint64(out)
	s.now = s.now.Add(time.Second)
	if capacity == 0 {
		s.lastFail = s.now
	}
	d := s.c.Step(s.cfg, s.sample(capacity == 0))
	s.limit = d.Limit
	return d
}

func TestSlowUplinkLimitsIntakeToItsDrain(t *testing.T) {
	for _, perPub := range []float64{1, 2, 0.5} {
		s := newSim()
		var engagedAt int
		for i := 1; i <= 60; i++ {
			d := s.second(4000/perPub, perPub, 2000) // twice what the uplink delivers
			if d.Changed && d.Limit > 0 {
				engagedAt = i
				if d.Uplink != "cloud" {
					t.Errorf("perPub %v: limit set by %q", perPub, d.Uplink)
				}
			}
		}
		if engagedAt == 0 || engagedAt > 5 {
			t.Fatalf("perPub %v: limit set after %d s, want within 5 s", perPub, engagedAt)
		}
		want := 2000 / perPub
		if math.Abs(s.limit-want) > want/10 {
			t.Errorf("perPub %v: limit %.0f publishes/s after a minute, want about %.0f (the drain)", perPub, s.limit, want)
		}
		// The backlog stays near half the target delay of drain, not
		// the 2,000/s the devices would add.
		if s.backlog > 2000 {
			t.Errorf("perPub %v: backlog %d after a minute, want under a second of drain (2000)", perPub, s.backlog)
		}
	}
}

func TestOutageIsNotOverload(t *testing.T) {
	s := newSim()
	for i := range 30 {
		if d := s.second(1000, 1, 0); d.Limit != 0 {
			t.Fatalf("second %d of an outage: limit %.0f, want none (buffer everything)", i, d.Limit)
		}
	}
	// Back up and draining faster than devices publish: the outage's
	// backlog is no overload either.
	for i := range 20 {
		if d := s.second(1000, 1, 3000); d.Limit != 0 {
			t.Fatalf("second %d of the drain after an outage: limit %.0f, want none", i, d.Limit)
		}
	}
	if s.backlog != 0 {
		t.Errorf("backlog %d after the drain", s.backlog)
	}
}

func TestLimitLiftedAtOutageAndWhenDevicesSlowDown(t *testing.T) {
	s := newSim()
	for range 10 {
		s.second(4000, 1, 2000)
	}
	if s.limit == 0 {
		t.Fatal("no limit under overload")
	}
	if d := s.second(4000, 1, 0); d.Limit != 0 || !d.Changed {
		t.Errorf("the uplink failed: %+v, want the limit lifted at once", d)
	}
	for range 10 {
		s.second(4000, 1, 2000)
	}
	if s.limit == 0 {
		t.Fatal("no limit when the overload came back")
	}
	lifted := 0
	for i := 1; i <= 20 && lifted == 0; i++ {
		if d := s.second(500, 1, 2000); d.Changed && d.Limit == 0 {
			lifted = i
		}
	}
	if lifted == 0 || lifted > calmSteps+3 {
		t.Errorf("devices slowed down: limit lifted after %d s, want within %d", lifted, calmSteps+3)
	}
}

// A request slower than a step keeps the limit; an uplink that delivers
// nothing for stallSteps steps (hanging, not yet failing) is an outage.
func TestSlowRequestKeepsLimitHangingUplinkLiftsIt(t *testing.T) {
	s := newSim()
	for range 10 {
		s.second(4000, 1, 2000)
	}
	for i := range 10 { // one request every other second
		capacity := 4000.0
		if i%2 == 0 {
			capacity = -1
		}
		if d := s.second(4000, 1, capacity); d.Limit == 0 {
			t.Fatalf("second %d of slow requests: limit lifted", i)
		}
	}
	var d Decision
	for range stallSteps {
		d = s.second(4000, 1, -1)
	}
	if d.Limit != 0 || !d.Changed {
		t.Errorf("after %d steps without a delivery: %+v, want the limit lifted", stallSteps, d)
	}
}

func TestFastUplinkNeverLimits(t *testing.T) {
	s := newSim()
	for i := range 30 {
		if d := s.second(4000, 1, 5000); d.Limit != 0 {
			t.Fatalf("second %d: limit %.0f with an uplink faster than the devices", i, d.Limit)
		}
	}
}

func TestFairShareOff(t *testing.T) {
	s := newSim()
	s.cfg.FairShare = false
	for i := range 30 {
		if d := s.second(4000, 1, 2000); d.Limit != 0 {
			t.Fatalf("second %d: limit %.0f with fair_share off", i, d.Limit)
		}
	}
}

func TestSlowestUplinkSetsTheLimit(t *testing.T) {
	var c Controller
	cfg := DefaultConfig()
	now := time.Unix(1_000_000, 0)
	var pubs, fastSent, slowSent uint64
	var fastB, slowB int64
	var d Decision
	for i := range 20 {
		if i > 0 {
			taken := 3000.0
			if d.Limit > 0 {
				taken = min(taken, d.Limit)
			}
			pubs += uint64(taken)
			fastB += int64(taken)
			slowB += int64(taken)
			f, s := min(fastB, 2500), min(slowB, 1000)
			fastB, slowB = fastB-f, slowB-s
			fastSent, slowSent = fastSent+uint64(f), slowSent+uint64(s)
			now = now.Add(time.Second)
		}
		d = c.Step(cfg, Sample{At: now, Publishes: pubs, Uplinks: []Uplink{
			{Name: "fast", Backlog: fastB, Delivered: fastSent},
			{Name: "slow", Backlog: slowB, Delivered: slowSent},
		}})
	}
	if d.Uplink != "slow" || math.Abs(d.Limit-1000) > 100 {
		t.Errorf("decision %+v, want a limit of about 1000 set by slow", d)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		delay time.Duration
		ok    bool
	}{{time.Second, true}, {100 * time.Millisecond, true}, {time.Minute, true}, {50 * time.Millisecond, false}, {2 * time.Minute, false}} {
		c := DefaultConfig()
		c.TargetDelay = tc.delay
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("target_delay %s: %v", tc.delay, err)
		}
	}
}
