package uplink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchSend sends 100 events (10 sources) per op to a local receiver that
// reads and discards the body, and reports events/s.
func benchSend(b *testing.B, mode string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	s := newTestSender(b, srv.URL, mode, nil)
	records := testRecords(b, 100, 10)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Send(ctx, records); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(records))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSendBatch: one request carrying 100 events.
func BenchmarkSendBatch(b *testing.B) { benchSend(b, ModeBatch) }

// BenchmarkSendBinary: 100 requests, 8 in flight, per-source order.
func BenchmarkSendBinary(b *testing.B) { benchSend(b, ModeBinary) }

// BenchmarkSendStructured: 100 requests, 8 in flight, per-source order.
func BenchmarkSendStructured(b *testing.B) { benchSend(b, ModeStructured) }
