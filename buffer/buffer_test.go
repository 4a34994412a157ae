package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// fakeClock is a settable clock for WithClock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.MinFreeBytes = MinFreeFloor
	return cfg
}

// open opens a buffer closed at the end of the test.
func open(t testing.TB, cfg Config, m *metrics.Set, opts ...Option) *Buffer {
	t.Helper()
	b, err := Open(cfg, nil, m, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// run runs b.Run until the returned stop is called (or the test ends).
func run(t testing.TB, b *Buffer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// reopen stops b's Run (stop is what run returned), closes b and opens its
// directory again.
func reopen(t testing.TB, b *Buffer, stop func(), cfg Config) *Buffer {
	t.Helper()
	stop()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return open(t, cfg, nil)
}

func rec(q string, s string) Record { return Record{Queue: q, Data: []byte(s)} }

func appendT(t testing.TB, b *Buffer, recs ...Record) {
	t.Helper()
	if err := b.Append(context.Background(), recs, true); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func queueT(t testing.TB, b *Buffer, name string) *Queue {
	t.Helper()
	q, err := b.Queue(name)
	if err != nil {
		t.Fatalf("Queue(%q): %v", name, err)
	}
	return q
}

func nextT(t testing.TB, q *Queue, maxRecords, maxBytes int) *Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bt, err := q.Next(ctx, maxRecords, maxBytes)
	if err != nil {
		t.Fatalf("Next(%s): %v", q.name, err)
	}
	return bt
}

// noNext asserts that q has nothing to hand out.
func noNext(t testing.TB, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if bt, err := q.Next(ctx, 100, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next(%s) = %q, %v; want nothing", q.name, strs(bt), err)
	}
}

func strs(bt *Batch) []string {
	if bt == nil {
		return nil
	}
	var out []string
	for _, r := range bt.Records() {
		out = append(out, string(r))
	}
	return out
}

func want(t testing.TB, bt *Batch, w ...string) {
	t.Helper()
	if got := strs(bt); strings.Join(got, ",") != strings.Join(w, ",") {
		t.Fatalf("records = %q, want %q", got, w)
	}
}

func wantStats(t testing.TB, b *Buffer, records, bytes int64) {
	t.Helper()
	s := b.Stats()
	if s.Records != records || s.Bytes != bytes {
		t.Fatalf("Stats = %d records %d bytes, want %d records %d bytes", s.Records, s.Bytes, records, bytes)
	}
	var r, n int64
	for _, qs := range s.Queues {
		r += qs.Records
		n += qs.Bytes
	}
	if r != records || n != bytes {
		t.Fatalf("queue stats sum to %d records %d bytes, want %d/%d", r, n, records, bytes)
	}
}

func metricValue(t testing.TB, m *metrics.Set, name string) string {
	t.Helper()
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	for line := range strings.SplitSeq(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

func TestAppendNextAck(t *testing.T) {
	b := open(t, testConfig(t), nil)
	run(t, b)
	appendT(t, b, rec("a", "a1"), rec("b", "b1"), rec("a", "a2"))
	appendT(t, b, rec("a", "a3"))
	appendT(t, b, rec("b", "b2"), rec("a", "a4"))
	wantStats(t, b, 6, 12)

	qa, qb := queueT(t, b, "a"), queueT(t, b, "b")
	tests := []struct {
		q          *Queue
		maxRecords int
		maxBytes   int
		want       []string
	}{
		{qa, 2, 0, []string{"a1", "a2"}},
		{qa, 10, 3, []string{"a3"}},
		{qa, 10, 1, []string{"a4"}}, // at least one record, even over maxBytes
		{qb, 10, 0, []string{"b1", "b2"}},
	}
	var batches []*Batch
	for _, tt := range tests {
		bt := nextT(t, tt.q, tt.maxRecords, tt.maxBytes)
		want(t, bt, tt.want...)
		batches = append(batches, bt)
	}
	noNext(t, qa)
	noNext(t, qb)
	wantStats(t, b, 6, 12) // leased records are still stored
	// Ack out of order.
	for _, i := range []int{2, 0, 3, 1} {
		if err := batches[i].Ack(); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	if err := batches[0].Ack(); err != nil {
		t.Fatalf("second Ack: %v", err)
	}
	wantStats(t, b, 0, 0)
	noNext(t, qa)

	// Next blocks until a record arrives.
	got := make(chan *Batch)
	go func() {
		bt, _ := qa.Next(context.Background(), 10, 0)
		got <- bt
	}()
	time.Sleep(10 * time.Millisecond)
	appendT(t, b, rec("a", "a5"))
	want(t, <-got, "a5")
}

func TestNack(t *testing.T) {
	b := open(t, testConfig(t), nil)
	run(t, b)
	for i := 1; i <= 9; i++ {
		appendT(t, b, rec("q", fmt.Sprint(i)))
	}
	q := queueT(t, b, "q")
	b1 := nextT(t, q, 3, 0)
	b2 := nextT(t, q, 3, 0)
	want(t, b1, "1", "2", "3")
	want(t, b2, "4", "5", "6")
	b2.Nack()
	b1.Nack()
	b1.Nack()                        // no effect
	if err := b1.Ack(); err != nil { // no effect after Nack
		t.Fatal(err)
	}
	b3 := nextT(t, q, 4, 0)
	want(t, b3, "1", "2", "3", "4")
	b4 := nextT(t, q, 4, 0)
	want(t, b4, "5", "6", "7", "8")
	b3.Nack()
	if err := b4.Ack(); err != nil {
		t.Fatal(err)
	}
	want(t, nextT(t, q, 100, 0), "1", "2", "3", "4", "9")
	wantStats(t, b, 5, 5)
}

func TestReopen(t *testing.T) {
	cfg := testConfig(t)
	b, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, b)
	for i := range 5 {
		appendT(t, b, rec("x", fmt.Sprint("x", i)), rec("y", fmt.Sprint("y", i)))
	}
	qx := queueT(t, b, "x")
	if err := nextT(t, qx, 2, 0).Ack(); err != nil { // x0 x1 gone
		t.Fatal(err)
	}
	nextT(t, qx, 1, 0) // x2 leased, never acked
	stop()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Append(context.Background(), []Record{rec("x", "late")}, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}

	b = open(t, cfg, nil)
	wantStats(t, b, 8, 16)
	run(t, b)
	appendT(t, b, rec("x", "x5"), rec("z", "z0"))
	want(t, nextT(t, queueT(t, b, "x"), 100, 0), "x2", "x3", "x4", "x5")
	want(t, nextT(t, queueT(t, b, "y"), 100, 0), "y0", "y1", "y2", "y3", "y4")
	want(t, nextT(t, queueT(t, b, "z"), 100, 0), "z0")
	if s := b.Stats(); len(s.Queues) != 3 {
		t.Fatalf("queues = %v", s.Queues)
	}
}

// A queue name may hold any printable UTF-8: its gauges escape it as the
// Prometheus text format wants (backslash and double quote), UTF-8 as is.
func TestQueueMetricsLabel(t *testing.T) {
	m := metrics.NewSet()
	b := open(t, testConfig(t), m)
	run(t, b)
	name := `say "hi" \ café`
	appendT(t, b, rec(name, "abc"), rec(name, "de"))
	if v := metricValue(t, m, `edgegate_buffer_queue_records{queue="say \"hi\" \\ café"}`); v != "2" {
		t.Errorf("queue records = %q, want 2", v)
	}
	if v := metricValue(t, m, `edgegate_buffer_queue_bytes{queue="say \"hi\" \\ café"}`); v != "5" {
		t.Errorf("queue bytes = %q, want 5", v)
	}
}

func TestDropOldest(t *testing.T) {
	clk := newFakeClock()
	m := metrics.NewSet()
	cfg := testConfig(t)
	cfg.MaxBytes = 10
	b := open(t, cfg, m, WithClock(clk.now))
	run(t, b)
	// Oldest by append time across queues: a0 b0 a1 b1 a2.
	for i := range 3 {
		appendT(t, b, rec("a", fmt.Sprint("a", i)))
		clk.advance(time.Second)
		if i < 2 {
			appendT(t, b, rec("b", fmt.Sprint("b", i)))
			clk.advance(time.Second)
		}
	}
	wantStats(t, b, 5, 10)
	appendT(t, b, rec("c", "c00")) // 3 bytes: drops a0 b0
	wantStats(t, b, 4, 9)
	if v := metricValue(t, m, `edgegate_buffer_dropped_total{reason="overflow"}`); v != "2" {
		t.Fatalf("dropped overflow = %q, want 2", v)
	}
	if !b.Stats().Full {
		t.Fatal("Stats.Full = false while dropping")
	}
	want(t, nextT(t, queueT(t, b, "a"), 10, 0), "a1", "a2")
	want(t, nextT(t, queueT(t, b, "b"), 10, 0), "b1")
	if err := b.Append(context.Background(), []Record{rec("a", "elevenbytes")}, true); !errors.Is(err, ErrFull) {
		t.Fatalf("Append larger than max_bytes = %v, want ErrFull", err)
	}
}

func TestLeasedThenDropped(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes = 4
	b := open(t, cfg, nil)
	run(t, b)
	appendT(t, b, rec("q", "1"), rec("q", "2"), rec("q", "3"))
	q := queueT(t, b, "q")
	leased := nextT(t, q, 2, 0) // 1 2
	want(t, leased, "1", "2")
	appendT(t, b, rec("q", "45")) // drops 1 (leased)
	wantStats(t, b, 3, 4)
	if err := leased.Ack(); err != nil { // deletes only 2
		t.Fatal(err)
	}
	wantStats(t, b, 2, 3)
	nacked := nextT(t, q, 1, 0)
	want(t, nacked, "3")
	nacked.Nack()
	appendT(t, b, rec("q", "67")) // drops 3 (nacked)
	wantStats(t, b, 2, 4)
	want(t, nextT(t, q, 10, 0), "45", "67")
}

func TestReject(t *testing.T) {
	m := metrics.NewSet()
	cfg := testConfig(t)
	cfg.MaxBytes = 6
	cfg.Overflow = Reject
	b := open(t, cfg, m)
	run(t, b)
	appendT(t, b, rec("q", "12"), rec("q", "34"))
	if r := b.Refusing(); r != "" {
		t.Fatalf("Refusing() = %q before a rejection", r)
	}
	err := b.Append(context.Background(), []Record{rec("q", "56"), rec("r", "7")}, true)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append over max_bytes = %v, want ErrFull", err)
	}
	if r := b.Refusing(); !strings.Contains(r, "overflow: reject") {
		t.Fatalf("Refusing() = %q after a rejection", r)
	}
	wantStats(t, b, 2, 4) // nothing of the refused Append stored
	appendT(t, b, rec("q", "56"))
	if !b.Stats().Full {
		t.Fatal("Stats.Full = false after a rejection")
	}
	q := queueT(t, b, "q")
	if err := nextT(t, q, 2, 0).Ack(); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Full || b.Refusing() != "" {
		t.Fatalf("Stats.Full = true or Refusing() = %q after acks freed space", b.Refusing())
	}
	appendT(t, b, rec("q", "78"), rec("r", "9"))
	want(t, nextT(t, q, 10, 0), "56", "78")
	if v := metricValue(t, m, `edgegate_buffer_rejected_total{reason="full"}`); v != "2" {
		t.Fatalf("rejected = %q, want 2", v)
	}
}

func TestExpiry(t *testing.T) {
	clk := newFakeClock()
	m := metrics.NewSet()
	cfg := testConfig(t)
	cfg.MaxAge = time.Hour
	b := open(t, cfg, m, WithClock(clk.now))
	run(t, b)
	appendT(t, b, rec("a", "old1"), rec("b", "old2"))
	q := queueT(t, b, "a")
	leased := nextT(t, q, 1, 0)
	clk.advance(30 * time.Minute)
	appendT(t, b, rec("a", "new1"))
	clk.advance(31 * time.Minute)
	n, err := b.sweepExpired(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("sweepExpired = %d, %v; want 2", n, err)
	}
	wantStats(t, b, 1, 4)
	if err := leased.Ack(); err != nil {
		t.Fatal(err)
	}
	wantStats(t, b, 1, 4)
	want(t, nextT(t, q, 10, 0), "new1")
	noNext(t, queueT(t, b, "b"))
	if v := metricValue(t, m, `edgegate_buffer_dropped_total{reason="expired"}`); v != "2" {
		t.Fatalf("dropped expired = %q, want 2", v)
	}
}

func TestDiskGuard(t *testing.T) {
	for _, policy := range []Policy{DropOldest, Reject} {
		t.Run(string(policy), func(t *testing.T) {
			var free atomic.Int64
			free.Store(1 << 30)
			m := metrics.NewSet()
			cfg := testConfig(t)
			cfg.MinFreeBytes = MinFreeFloor
			cfg.Overflow = policy
			b := open(t, cfg, m, WithDiskFree(func(string) (int64, error) { return free.Load(), nil }))
			stop := run(t, b)
			appendT(t, b, rec("q", "1"), rec("q", "2"))

			free.Store(1 << 19)
			b.checkDisk(context.Background())
			s := b.Stats()
			if !s.Full || s.DiskFree != 1<<19 {
				t.Fatalf("Stats = %+v, want Full and DiskFree %d", s, 1<<19)
			}
			if r := b.Refusing(); !strings.Contains(r, "min_free_bytes") {
				t.Fatalf("Refusing() = %q with low disk", r)
			}
			if err := b.Append(context.Background(), []Record{rec("q", "3")}, true); !errors.Is(err, ErrFull) {
				t.Fatalf("Append with low disk = %v, want ErrFull", err)
			}
			wantRecords := int64(2)
			if policy == DropOldest {
				wantRecords = 1 // capacity lowered to 90% of what it held
			}
			wantStats(t, b, wantRecords, wantRecords)

			free.Store(b.Stats().DiskFloor + 1) // above the floor, but within the hysteresis
			b.checkDisk(context.Background())
			if !b.Stats().Full {
				t.Fatal("disk guard reset without hysteresis")
			}
			free.Store(1 << 30)
			b.checkDisk(context.Background())
			if b.Stats().Full || b.Refusing() != "" {
				t.Fatalf("disk guard still tripped: Refusing() = %q", b.Refusing())
			}
			appendT(t, b, rec("q", "4"))
			stop()
			if v := metricValue(t, m, `edgegate_buffer_disk_free_bytes`); v != "1073741824" {
				t.Fatalf("disk free gauge = %q", v)
			}
		})
	}
}

func TestRunStops(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t)
	b, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- b.Run(ctx) }()

	// Appenders racing with shutdown: each Append succeeds (and is then
	// readable) or fails with ErrClosed.
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for j := 0; ; j++ {
				err := b.Append(context.Background(), []Record{rec("q", fmt.Sprint(i, "-", j))}, true)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				ok.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	wg.Wait()
	if err := b.Run(context.Background()); err == nil {
		t.Fatal("second Run returned nil")
	}
	if got := b.Stats().Records; got != ok.Load() {
		t.Fatalf("stored %d records, %d Appends succeeded", got, ok.Load())
	}
	q := queueT(t, b, "q")
	blocked := make(chan error, 1)
	go func() {
		for {
			bt, err := q.Next(context.Background(), 1000, 0)
			if err != nil {
				blocked <- err
				return
			}
			if err := bt.Ack(); err != nil {
				blocked <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := runtime.NumGoroutine()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestConcurrentAppenders(t *testing.T) {
	b := open(t, testConfig(t), nil)
	run(t, b)
	const writers, per = 16, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				r := []Record{rec("q1", fmt.Sprintf("%d:%d", w, i))}
				if i%3 == 0 {
					r = append(r, rec("q2", fmt.Sprintf("%d:%d", w, i)))
				}
				if err := b.Append(context.Background(), r, true); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	// A consumer runs concurrently with the writers.
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		q, err := b.Queue("q1")
		if err != nil {
			t.Error(err)
			return
		}
		for len(got) < writers*per {
			bt, err := q.Next(context.Background(), 37, 0)
			if err != nil {
				t.Errorf("Next: %v", err)
				return
			}
			got = append(got, strs(bt)...)
			if err := bt.Ack(); err != nil {
				t.Errorf("Ack: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	<-done
	last := make(map[string]int)
	for _, s := range got {
		w, i, _ := strings.Cut(s, ":")
		var n int
		fmt.Sscan(i, &n)
		if p, ok := last[w]; ok && n != p+1 {
			t.Fatalf("writer %s: record %d after %d", w, n, p)
		}
		last[w] = n
	}
	wantStats(t, b, int64(writers*((per+2)/3)), b.Stats().Bytes)
}

func TestQueueNames(t *testing.T) {
	b := open(t, testConfig(t), nil)
	for _, name := range []string{"", "a\nb", strings.Repeat("x", 201), "\xff"} {
		if _, err := b.Queue(name); err == nil {
			t.Errorf("Queue(%q) succeeded", name)
		}
	}
	if _, err := b.Queue(`uplink "cloud" \ 1`); err != nil {
		t.Fatal(err)
	}
}

func TestLargeAppendsAndRecords(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	// One Append larger than a Badger transaction (15% of the memtable).
	var recs []Record
	for i := range 12000 {
		recs = append(recs, Record{Queue: []string{"a", "b"}[i%2], Data: roundTripPayload(i)})
	}
	appendT(t, b, recs...)
	// Records above the value threshold live in the value log.
	big := bytes.Repeat([]byte("x"), 100<<10)
	appendT(t, b, Record{Queue: "big", Data: big}, Record{Queue: "big", Data: big}, rec("big", "small"))
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = open(t, cfg, nil)
	var wantBytes int64
	for _, r := range recs {
		wantBytes += int64(len(r.Data))
	}
	wantStats(t, b, 12003, wantBytes+2*(100<<10)+5)
	qb := queueT(t, b, "big")
	bt := nextT(t, qb, 10, 150<<10)
	if len(bt.Records()) != 1 || !bytes.Equal(bt.Records()[0], big) {
		t.Fatalf("big batch: %d records", len(bt.Records()))
	}
	bt = nextT(t, qb, 10, 150<<10)
	if len(bt.Records()) != 2 || string(bt.Records()[1]) != "small" {
		t.Fatalf("second big batch: %d records", len(bt.Records()))
	}
	for _, name := range []string{"a", "b"} {
		q := queueT(t, b, name)
		i := 0
		if name == "b" {
			i = 1
		}
		for i < len(recs) {
			bt := nextT(t, q, 1000, 0)
			for _, r := range bt.Records() {
				if !bytes.Equal(r, recs[i].Data) {
					t.Fatalf("queue %s record %d differs", name, i)
				}
				i += 2
			}
		}
	}
}

// TestCommitInterval: with commit_interval, appends arriving within the
// interval after a commit share the next one.
func TestCommitInterval(t *testing.T) {
	m := metrics.NewSet()
	cfg := testConfig(t)
	cfg.CommitInterval = maxCommitInterval
	b := open(t, cfg, m)
	run(t, b)
	appendT(t, b, rec("q", "first")) // the round the interval counts from
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { appendT(t, b, rec("q", fmt.Sprint(i))) })
	}
	wg.Wait()
	if got := metricValue(t, m, `edgegate_buffer_commit_records_count`); got != "2" {
		t.Errorf("commit rounds = %s, want 2 (the first append, then the other ten together)", got)
	}
}
