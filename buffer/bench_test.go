package buffer

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend: 100 concurrent appenders of one durable 200 B record each
// (MQTT clients), group-committed.
func BenchmarkAppend(b *testing.B) {
	for _, marked := range []bool{false, true} {
		b.Run(fmt.Sprintf("marked=%v", marked), func(b *testing.B) { benchAppend(b, marked) })
	}
}

// benchAppend: 100 concurrent durable appenders of one 200 B record, each
// with a resend mark as the gateway writes for QoS 1 messages when marked.
func benchAppend(b *testing.B, marked bool) {
	cfg := testConfig(b)
	cfg.MaxBytes = 1 << 40
	buf := open(b, cfg, nil)
	run(b, buf)
	data := make([]byte, 200)
	procs := max(1, 100/testingGOMAXPROCS())
	b.SetParallelism(procs)
	var ids atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		recs := []Record{{Queue: "bench", Data: data}}
		key := fmt.Appendf(nil, "client-%03d\x00\x00\x00", ids.Add(1))
		var marks []Mark
		for i := 0; pb.Next(); i++ {
			if marked {
				key[len(key)-2], key[len(key)-1] = byte(i>>8), byte(i)
				marks = []Mark{{Key: key, Value: uint64(i)}}
			}
			if err := buf.Append(context.Background(), recs, true, marks...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkNextAck: lease and ack batches of 100 records of 200 B.
func BenchmarkNextAck(b *testing.B) { benchNextAck(b, 0) }

// BenchmarkNextAckRetained: the same with retain, each ack moving the
// records into the history.
func BenchmarkNextAckRetained(b *testing.B) { benchNextAck(b, time.Hour) }

func benchNextAck(b *testing.B, retain time.Duration) {
	cfg := testConfig(b)
	cfg.MaxBytes = 1 << 40
	cfg.Retain = retain
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
