package buffer

import (
	"context"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// steppedClock is a wall clock that can step and a monotonic clock that
// cannot, for WithClock and WithMonotonic.
type steppedClock struct {
	wall *fakeClock
	mono fakeClock // ns since Open
}

func newSteppedClock(wall time.Time) *steppedClock {
	c := &steppedClock{wall: &fakeClock{}}
	c.wall.ns.Store(wall.UnixNano())
	return c
}

func (c *steppedClock) options() []Option {
	return []Option{WithClock(c.wall.now), WithMonotonic(func() time.Duration { return time.Duration(c.mono.ns.Load()) })}
}

// pass lets d go by on both clocks.
func (c *steppedClock) pass(d time.Duration) { c.wall.advance(d); c.mono.advance(d) }

// step moves the wall clock alone.
func (c *steppedClock) step(d time.Duration) { c.wall.advance(d) }

// openStepped opens and runs a buffer with max_age 1h on a stepped clock
// set to March 2026.
func openStepped(t *testing.T) (*Buffer, *steppedClock, *metrics.Set) {
	t.Helper()
	clk := newSteppedClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	m := metrics.NewSet()
	cfg := testConfig(t)
	cfg.MaxAge = time.Hour
	b := open(t, cfg, m, clk.options()...)
	run(t, b)
	return b, clk, m
}

func sweepN(t *testing.T, b *Buffer, want int) {
	t.Helper()
	n, err := b.sweepExpired(context.Background())
	if err != nil || n != want {
		t.Fatalf("sweepExpired = %d, %v; want %d expired", n, err, want)
	}
}

// A step forward of the wall clock (NTP after a boot without RTC) expires
// nothing: records stored before it age by the monotonic clock, and expire
// when they really are max_age old; records stored after age as usual.
func TestClockStepForwardExpiresNothing(t *testing.T) {
	b, clk, m := openStepped(t)
	appendT(t, b, rec("a", "before1"), rec("b", "before2"))
	clk.pass(10 * time.Minute)
	if s := b.watchClock(); s != 0 {
		t.Fatalf("watchClock saw a step of %v when none happened", s)
	}
	clk.pass(time.Second)
	clk.step(3 * time.Hour)
	if s := b.watchClock(); s != 3*time.Hour {
		t.Fatalf("watchClock = %v, want a 3h step", s)
	}
	if v := metricValue(t, m, `edgegate_clock_jumps_total{direction="forward"}`); v != "1" {
		t.Errorf("clock jumps forward = %q, want 1", v)
	}
	sweepN(t, b, 0)
	appendT(t, b, rec("a", "after"))
	clk.pass(40 * time.Minute) // before*: 50m old, after: 40m
	sweepN(t, b, 0)
	bt := nextT(t, queueT(t, b, "a"), 10, 0)
	want(t, bt, "before1", "after")
	if age := clk.wall.now().Sub(bt.AppendedAt(0)); age != 50*time.Minute+time.Second {
		t.Errorf("AppendedAt of a record stored before the step: %v old, want 50m1s", age)
	}
	bt.Nack()
	clk.pass(15 * time.Minute) // before*: 65m, after: 55m
	sweepN(t, b, 2)
	want(t, nextT(t, queueT(t, b, "a"), 10, 0), "after")
	clk.pass(6 * time.Minute)
	sweepN(t, b, 1)
}

// A step back expires nothing early and reorders nothing: records stored
// before it look younger and are kept up to the step longer (and so are
// those behind them: expiry, like delivery, goes in append order); Next
// hands out records in the order they were appended.
func TestClockStepBackKeepsOrderAndRecords(t *testing.T) {
	b, clk, m := openStepped(t)
	appendT(t, b, rec("q", "1"))
	clk.pass(time.Second)
	clk.step(-2 * time.Hour)
	if s := b.watchClock(); s != -2*time.Hour {
		t.Fatalf("watchClock = %v, want a -2h step", s)
	}
	if v := metricValue(t, m, `edgegate_clock_jumps_total{direction="backward"}`); v != "1" {
		t.Errorf("clock jumps backward = %q, want 1", v)
	}
	appendT(t, b, rec("q", "2"), rec("q", "3"))
	want(t, nextT(t, queueT(t, b, "q"), 10, 0), "1", "2", "3")
	// Expiry goes in sequence order too: 2 and 3 look 61m old but wait
	// behind 1, stamped 2h "later".
	clk.pass(61 * time.Minute)
	sweepN(t, b, 0)
	clk.pass(2 * time.Hour)
	sweepN(t, b, 3)
}

// A gateway that booted in 1970 (no RTC), stored events, and is restarted
// once NTP has set the clock keeps them: through Badger, a time before any
// set clock counts as stored when the buffer was opened.
func TestClockUnsetThenRestartKeepsRecords(t *testing.T) {
	clk := newSteppedClock(time.Unix(100, 0)) // 1970, a minute and a bit after boot
	cfg := testConfig(t)
	cfg.MaxAge = time.Hour
	b := open(t, cfg, nil, clk.options()...)
	stop := run(t, b)
	appendT(t, b, rec("q", "1970-a"), rec("q", "1970-b"))
	// NTP answers while the gateway runs: nothing expires.
	clk.pass(time.Second)
	clk.step(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Sub(clk.wall.now()))
	if b.watchClock() <= 0 {
		t.Fatal("the step from 1970 went unseen")
	}
	sweepN(t, b, 0)
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted later: the 1970 times count as stored at this open.
	clk.pass(30 * time.Minute)
	clk2 := newSteppedClock(clk.wall.now())
	b = open(t, cfg, nil, clk2.options()...)
	run(t, b)
	sweepN(t, b, 0)
	want(t, nextT(t, queueT(t, b, "q"), 10, 0), "1970-a", "1970-b")
	clk2.pass(59 * time.Minute)
	sweepN(t, b, 0)
	clk2.pass(2 * time.Minute)
	sweepN(t, b, 2)
}

// With WithClock alone (tests that move time on by hours), the monotonic
// clock follows it: no step is seen.
func TestClockWithClockAloneSeesNoStep(t *testing.T) {
	clk := newFakeClock()
	b := open(t, testConfig(t), nil, WithClock(clk.now))
	clk.advance(5 * time.Hour)
	if s := b.watchClock(); s != 0 {
		t.Fatalf("watchClock = %v, want 0", s)
	}
}
