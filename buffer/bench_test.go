package buffer

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAppend: 100 concurrent appenders of one durable 200 B record each
// (MQTT clients), group-committed.
func BenchmarkAppend(b *testing.B) {
	cfg := testConfig(b)
	cfg.MaxBytes = 1 << 40
	buf := open(b, cfg, nil)
	run(b, buf)
	data := make([]byte, 200)
	procs := max(1, 100/testingGOMAXPROCS())
	b.SetParallelism(procs)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		recs := []Record{{Queue: "bench", Data: data}}
		for pb.Next() {
			if err := buf.Append(context.Background(), recs, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkNextAck: lease and ack batches of 100 records of 200 B.
func BenchmarkNextAck(b *testing.B) {
	cfg := testConfig(b)
	cfg.MaxBytes = 1 << 40
	buf := open(b, cfg, nil)
	run(b, buf)
	data := make([]byte, 200)
	recs := make([]Record, 1000)
	for i := range recs {
		recs[i] = Record{Queue: "bench", Data: data}
	}
	for i := 0; i < b.N; i += len(recs) {
		if err := buf.Append(context.Background(), recs, true); err != nil {
			b.Fatal(err)
		}
	}
	q := queueT(b, buf, "bench")
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; {
		bt, err := q.Next(ctx, 100, 0)
		if err != nil {
			b.Fatal(err)
		}
		n += len(bt.Records())
		if err := bt.Ack(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func testingGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }
