package buffer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// With retain, acked records move to the queue's history with their
// append time; Forget keeps a record out; the history survives a reopen
// and goes when it is older than retain, counted apart from lost records.
func TestRetainHistory(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(t)
	cfg.Retain = time.Hour
	b := open(t, cfg, nil, WithClock(clk.now))
	stop := run(t, b)
	start := clk.now()
	for i := 1; i <= 4; i++ {
		appendT(t, b, Record{Queue: "up", Data: []byte(fmt.Sprint("e", i))})
		clk.advance(time.Minute)
	}
	q := queueT(t, b, "up")
	bt := nextT(t, q, 3, 0) // e1 e2 e3
	bt.Forget(1)            // e2 was dead-lettered, not delivered
	if err := bt.Ack(); err != nil {
		t.Fatal(err)
	}
	hist := RetainedName("up")
	got, _ := listT(t, b, hist, ListOptions{})
	if got != "1:e1,2:e3" {
		t.Fatalf("history = %s, want e1 e3", got)
	}
	es, _, _ := b.List(hist, ListOptions{})
	if !es[1].Appended.Equal(start.Add(2 * time.Minute)) {
		t.Fatalf("retained e3 appended %v, want its original time %v", es[1].Appended, start.Add(2*time.Minute))
	}
	wantStats(t, b, 3, 6) // e4 pending, e1 e3 retained
	if st := b.Stats().Queues[hist]; st.Records != 2 || st.Bytes != 4 {
		t.Fatalf("history stats = %+v", st)
	}
	if _, err := b.Queue(hist); err == nil {
		t.Fatal("a history can be consumed")
	}

	b = reopen(t, b, stop, cfg)
	b.now = clk.now
	run(t, b)
	wantStats(t, b, 3, 6)
	got, _ = listT(t, b, hist, ListOptions{})
	if got != "1:e1,2:e3" {
		t.Fatalf("history after reopen = %s", got)
	}
	// The next ack continues the history's seqs.
	if err := nextT(t, queueT(t, b, "up"), 10, 0).Ack(); err != nil {
		t.Fatal(err)
	}
	got, _ = listT(t, b, hist, ListOptions{})
	if got != "1:e1,2:e3,3:e4" {
		t.Fatalf("history = %s", got)
	}

	// e1 and e3 are now older than an hour, e4 not quite.
	clk.advance(time.Hour - 2*time.Minute + time.Second)
	if _, err := b.sweepExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ = listT(t, b, hist, ListOptions{})
	if got != "3:e4" {
		t.Fatalf("history after an hour = %s, want e4", got)
	}
	wantStats(t, b, 1, 2)
	if v := metricValue(t, b.m.set, `edgegate_buffer_retained_removed_total{reason="expired"}`); v != "2" {
		t.Fatalf("retained removed = %q, want 2", v)
	}
	if v := metricValue(t, b.m.set, `edgegate_buffer_dropped_total{reason="expired"}`); v != "0" {
		t.Fatalf("dropped expired = %q, want 0: delivered records are not lost", v)
	}
}

// Under pressure the history goes first, under either policy, and is not
// counted as dropped; reject refuses only when no history is left.
func TestRetainedEvictedFirst(t *testing.T) {
	for _, policy := range []Policy{DropOldest, Reject} {
		t.Run(string(policy), func(t *testing.T) {
			clk := newFakeClock()
			m := metrics.NewSet()
			cfg := testConfig(t)
			cfg.Retain = time.Hour
			cfg.MaxBytes = 10
			cfg.Overflow = policy
			b := open(t, cfg, m, WithClock(clk.now))
			run(t, b)
			appendT(t, b, rec("pending", "p1")) // the oldest record
			clk.advance(time.Second)
			appendT(t, b, rec("up", "d1"), rec("up", "d2"), rec("up", "d3"))
			clk.advance(time.Second)
			if err := nextT(t, queueT(t, b, "up"), 10, 0).Ack(); err != nil {
				t.Fatal(err)
			}
			wantStats(t, b, 4, 8)
			appendT(t, b, rec("pending", "p2"), rec("pending", "p3")) // 2 bytes more than there is room for
			if got, _ := listT(t, b, "pending", ListOptions{}); got != "1:p1,2:p2,3:p3" {
				t.Fatalf("pending = %s: a newer retained record should have gone first", got)
			}
			if got, _ := listT(t, b, RetainedName("up"), ListOptions{}); got != "2:d2,3:d3" {
				t.Fatalf("history = %s, want d2 d3", got)
			}
			if b.Stats().Full {
				t.Fatal("Stats.Full while only history made room")
			}
			appendT(t, b, rec("pending", "p4"))
			appendT(t, b, rec("pending", "p5"))
			if got, _ := listT(t, b, RetainedName("up"), ListOptions{}); got != "" {
				t.Fatalf("history = %s, want it empty", got)
			}
			if v := metricValue(t, m, `edgegate_buffer_retained_removed_total{reason="overflow"}`); v != "3" {
				t.Fatalf("retained removed = %q, want 3", v)
			}
			if v := metricValue(t, m, `edgegate_buffer_dropped_total{reason="overflow"}`); v != "0" {
				t.Fatalf("dropped = %q, want 0", v)
			}
			err := b.Append(context.Background(), []Record{rec("pending", "p6")}, true)
			if policy == Reject {
				if !errors.Is(err, ErrFull) {
					t.Fatalf("Append with no history left = %v, want ErrFull", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := listT(t, b, "pending", ListOptions{}); got != "2:p2,3:p3,4:p4,5:p5,6:p6" {
				t.Fatalf("pending = %s", got)
			}
		})
	}
}

// A full episode ends when what waits for delivery is back under 90%,
// however much history the delivered records then fill.
func TestRetainedHistoryDoesNotKeepBufferFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retain = time.Hour
	cfg.MaxBytes = 10
	b := open(t, cfg, nil)
	run(t, b)
	for i := range 6 {
		appendT(t, b, rec("up", fmt.Sprint("r", i))) // r0 goes: 12 bytes > 10
	}
	if !b.Stats().Full {
		t.Fatal("Stats.Full = false while dropping")
	}
	if err := nextT(t, queueT(t, b, "up"), 10, 0).Ack(); err != nil {
		t.Fatal(err)
	}
	wantStats(t, b, 5, 10) // all of it history now
	if b.Stats().Full {
		t.Fatal("Stats.Full = true with nothing waiting, only history")
	}
}

func TestRetainConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxAge = time.Hour
	for _, r := range []time.Duration{-time.Second, 2 * time.Hour} {
		cfg.Retain = r
		if err := cfg.Validate(); err == nil {
			t.Errorf("retain %v accepted", r)
		}
	}
	cfg.Retain = time.Hour
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
