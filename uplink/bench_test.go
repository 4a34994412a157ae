package uplink

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchSend sends 100 events (10 sources) per op to a local receiver that
// reads and discards the body, and reports events/s.
func benchSend(b *testing.B, mode string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	s := newTestSender(b, srv.URL, mode, nil)
	sendLoop(b, s, false)
}

// BenchmarkSendBatch: one request carrying 100 events.
func BenchmarkSendBatch(b *testing.B) { benchSend(b, ModeBatch) }

// BenchmarkSendBinary: 100 requests, 8 in flight, per-source order.
func BenchmarkSendBinary(b *testing.B) { benchSend(b, ModeBinary) }

// BenchmarkSendStructured: 100 requests, 8 in flight, per-source order.
func BenchmarkSendStructured(b *testing.B) { benchSend(b, ModeStructured) }

// BenchmarkSendBinaryRTT: 500 events of 100 sources per op in binary mode
// to a receiver 20 ms away (it sleeps before answering), by max_in_flight:
// the uplink's rate is max_in_flight over the round trip, less what the
// end of each Send (its busiest source) leaves idle.
func BenchmarkSendBinaryRTT(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()
	records := testRecords(b, 500, 100)
	for _, n := range []int{8, 32, 64} {
		b.Run(fmt.Sprintf("max_in_flight=%d", n), func(b *testing.B) {
			s := newTestSender(b, srv.URL, ModeBinary, func(c *Config) { c.HTTP.MaxInFlight = n })
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Send(context.Background(), records); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(records))/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkSendBatchGzip: BenchmarkSendBatch with gzip request bodies.
func BenchmarkSendBatchGzip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		_, _ = io.Copy(io.Discard, zr)
	}))
	defer srv.Close()
	s := newTestSender(b, srv.URL, ModeBatch, func(c *Config) { c.HTTP.Compression = CompressionGzip })
	sendLoop(b, s, false)
}

// BenchmarkSendMQTT: 100 QoS 1 publishes per op to an embedded mochi broker
// on loopback, 100 unacknowledged at most, each stored in paho's FileStore
// until its PUBACK.
func BenchmarkSendMQTT(b *testing.B) {
	br := startBroker(b, "127.0.0.1:0", nil, nil)
	br.noRecord = true
	s := newMQTTTestSender(b, "tcp://"+br.addr, nil)
	sendLoop(b, s, true)
}

// BenchmarkSendMQTTMemoryStore: BenchmarkSendMQTT with session_store
// memory, to show what the FileStore costs.
func BenchmarkSendMQTTMemoryStore(b *testing.B) {
	br := startBroker(b, "127.0.0.1:0", nil, nil)
	br.noRecord = true
	s := newMQTTTestSender(b, "tcp://"+br.addr, func(c *Config) { c.MQTT.SessionStore = SessionStoreMemory })
	sendLoop(b, s, true)
}

// sendLoop sends 100 events (10 sources) per op through s and reports
// events/s; warm sends once first, untimed (an MQTT sender connects then).
func sendLoop(b *testing.B, s Sender, warm bool) {
	records := testRecords(b, 100, 10)
	ctx := context.Background()
	if warm {
		if err := s.Send(ctx, records); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Send(ctx, records); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(records))/b.Elapsed().Seconds(), "events/s")
}
