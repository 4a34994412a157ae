package buffer

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSteady is the gateway's steady state at a fixed rate: 100
// devices each append one marked 300 B record at a time (an MQTT client's
// publishes are serialised by its connection), 5,000 records/s in all,
// and one consumer leases what is there, "sends" it (steadySendTime), and
// acks it beside the next lease, as the forwarder does. b.N is the number
// of records (-benchtime 25000x: 5 s). It reports what issue 13 measures
// from outside, for the buffer alone: the append→lease latency (p50, p99),
// bytes written to disk per record (this process's /proc/self/io
// write_bytes) split into memtable flushes and compactions (new tables,
// seen by polling the table list) and the rest (write-ahead logs and value
// log), Badger write requests (fsyncs) per 1,000 records and CPU
// seconds per 1,000 records.
//
// commit_interval=2ms shows what fewer, larger commits save in log bytes
// and cost in latency.
func BenchmarkSteady(b *testing.B) {
	for _, interval := range []time.Duration{0, 2 * time.Millisecond} {
		for _, rate := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("commit_interval=%s/rate=%d", interval, rate), func(b *testing.B) { benchSteady(b, rate, interval) })
		}
	}
}

// steadySendTime stands for an HTTP round trip to a local receiver.
const steadySendTime = 500 * time.Microsecond

func benchSteady(b *testing.B, rate int, interval time.Duration) {
	const devices = 100
	cfg := testConfig(b)
	cfg.MaxBytes = 1 << 40
	cfg.CommitInterval = interval
	buf := open(b, cfg, nil)
	run(b, buf)
	q := queueT(b, buf, "cloud")
	data := make([]byte, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	tables := newTableWatch(buf)
	var lat latencies
	ioStart, cpuStart := procWriteBytes(b), cpuSeconds()
	b.ResetTimer()
	start := time.Now()

	// Consumer: lease, send, ack beside the next lease.
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		acks := make(chan *Batch, 16)
		acked := make(chan struct{})
		go func() {
			defer close(acked)
			for bt := range acks {
				if err := bt.Ack(); err != nil {
					b.Error(err)
				}
			}
		}()
		defer func() { close(acks); <-acked }()
		for n := 0; n < b.N; {
			bt, err := q.Next(ctx, 500, 1<<20)
			if err != nil {
				b.Error(err)
				return
			}
			now := time.Now()
			for i := range bt.Records() {
				lat.add(now.Sub(bt.AppendedAt(i)))
			}
			n += len(bt.Records())
			time.Sleep(steadySendTime)
			acks <- bt
		}
	}()

	// Devices: each appends its share at its own fixed schedule.
	var wg sync.WaitGroup
	per := b.N / devices
	every := time.Duration(float64(time.Second) * devices / float64(rate))
	for d := range devices {
		n := per
		if d < b.N%devices {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Appendf(nil, "client-%03d\x00\x00", d)
			next := start.Add(every * time.Duration(d) / devices)
			for i := range n {
				time.Sleep(time.Until(next))
				next = next.Add(every)
				key[len(key)-2], key[len(key)-1] = byte(i>>8), byte(i)
				recs := []Record{{Queue: "cloud", Data: data}}
				if err := buf.Append(ctx, recs, true, Mark{Key: key, Value: uint64(i)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-consumed
	tables.stop()
	b.StopTimer()
	wrote := procWriteBytes(b) - ioStart
	n := float64(b.N)
	flushed, compacted := tables.bytes()
	b.ReportMetric(lat.quantile(0.5), "p50-ms")
	b.ReportMetric(lat.quantile(0.99), "p99-ms")
	b.ReportMetric(float64(wrote)/n, "disk-B/rec")
	b.ReportMetric(float64(flushed)/n, "flush-B/rec")
	b.ReportMetric(float64(compacted)/n, "compact-B/rec")
	b.ReportMetric(float64(wrote-flushed-compacted)/n, "log-B/rec")
	b.ReportMetric((cpuSeconds()-cpuStart)/n*1000, "cpu-s/1k")
	b.ReportMetric(float64(time.Since(start).Seconds()), "s")
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// quantile returns the q quantile in milliseconds.
func (l *latencies) quantile(q float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return float64(l.d[int(q*float64(len(l.d)-1))]) / 1e6
}

// tableWatch polls Badger's table list and sums the sizes of the tables
// that appear: at level 0, memtable flushes; deeper, compaction output.
type tableWatch struct {
	done             chan struct{}
	stopped          chan struct{}
	seen             map[uint64]bool
	flush, compacted int64
}

func newTableWatch(buf *Buffer) *tableWatch {
	w := &tableWatch{done: make(chan struct{}), stopped: make(chan struct{}), seen: map[uint64]bool{}}
	poll := func() {
		for _, t := range buf.db.Tables() {
			if w.seen[t.ID] {
				continue
			}
			w.seen[t.ID] = true
			if t.Level == 0 {
				w.flush += int64(t.OnDiskSize)
			} else {
				w.compacted += int64(t.OnDiskSize)
			}
		}
	}
	poll()
	clear(w.seen)
	for _, t := range buf.db.Tables() {
		w.seen[t.ID] = true
	}
	go func() {
		defer close(w.stopped)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				poll()
			case <-w.done:
				poll()
				return
			}
		}
	}()
	return w
}

func (w *tableWatch) stop()                           { close(w.done); <-w.stopped }
func (w *tableWatch) bytes() (flush, compacted int64) { return w.flush, w.compacted }

// procWriteBytes is this process's write_bytes from /proc/self/io.
func procWriteBytes(t testing.TB) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no write_bytes in /proc/self/io")
	return 0
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
