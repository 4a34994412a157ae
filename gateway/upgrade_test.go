package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/uplink"
)

// A buffer written by the previous release holds CloudEvents JSON records
// (cloudevent/testdata/legacy, captured from its code paths). After an
// upgrade they drain in every HTTP mode, next to records in the new buffer
// form, and arrive as the events they were (marked replayed: they waited
// out the restart).
func TestUpgradeDrainsJSONRecords(t *testing.T) {
	files, err := filepath.Glob("../cloudevent/testdata/legacy/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("legacy records: %v %v", files, err)
	}
	var stored [][]byte
	want := map[string][]event.Event{} // telemetry and its forward dead letter share an id
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.TrimSpace(b)
		var se event.Event
		if err := json.Unmarshal(b, &se); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, b)
		want[se.ID()] = append(want[se.ID()], se)
	}
	// One record in the buffer form, between the JSON ones.
	fresh := cloudevent.Event{ID: "new-1", Source: "/edgegate/gw-test/devices/n", Type: "io.edgegate.device.t",
		Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), DataContentType: "application/json", Data: []byte(`{"n":1}`)}
	stored = append(stored[:2], append([][]byte{cloudevent.Encode(&fresh)}, stored[2:]...)...)
	var se event.Event
	if err := json.Unmarshal(cloudevent.AppendJSON(nil, &fresh), &se); err != nil {
		t.Fatal(err)
	}
	want[se.ID()] = append(want[se.ID()], se)

	for _, mode := range []string{uplink.ModeBatch, uplink.ModeBinary, uplink.ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			rcv := newReceiver(t)
			cfg := testConfig(t, rcv.URL())
			cfg.Uplinks[0].HTTP.Mode = mode
			appendRecords(t, cfg.Buffer, queueName("cloud"), stored)

			start(t, cfg)
			rcv.WaitFor(len(want), 20*time.Second)
			deadline := time.Now().Add(10 * time.Second)
			for len(rcv.Events()) < len(stored) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			got := rcv.Events()
			if len(got) != len(stored) {
				t.Fatalf("%d arrivals, want %d", len(got), len(stored))
			}
			for _, e := range got {
				matched := false
				for _, w := range want[e.ID()] {
					matched = matched || sameEvent(e, w)
				}
				if !matched {
					t.Errorf("event %s arrived as\n%s\nwant one of %v, marked replayed", e.ID(), e, want[e.ID()])
				}
			}
		})
	}
}

// sameEvent reports whether got is want, marked replayed. Extension values
// compare in their canonical string form (binary mode carries strings);
// JSON data compares as the value it holds.
func sameEvent(got, want event.Event) bool {
	wantExt := map[string]string{cloudevent.ExtReplayed: "true"}
	for k, v := range want.Extensions() {
		if k != cloudevent.ExtReplayed {
			wantExt[k] = fmt.Sprint(v)
		}
	}
	gotExt := map[string]string{}
	for k, v := range got.Extensions() {
		gotExt[k] = fmt.Sprint(v)
	}
	return got.Source() == want.Source() && got.Type() == want.Type() && got.Subject() == want.Subject() &&
		got.Time().Equal(want.Time()) && got.DataContentType() == want.DataContentType() &&
		sameData(got.Data(), want.Data()) && reflect.DeepEqual(gotExt, wantExt)
}

func sameData(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil {
		return reflect.DeepEqual(va, vb)
	}
	return bytes.Equal(a, b)
}

// appendRecords stores records in a queue of the buffer at cfg.Dir, as a
// gateway that stopped would have left them.
func appendRecords(t *testing.T, cfg buffer.Config, queue string, data [][]byte) {
	t.Helper()
	buf, err := buffer.Open(cfg, slog.New(slog.DiscardHandler), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- buf.Run(ctx) }()
	recs := make([]buffer.Record, len(data))
	for i, d := range data {
		recs[i] = buffer.Record{Queue: queue, Data: d}
	}
	err = buf.Append(ctx, recs, true)
	cancel()
	if rerr := <-done; err == nil {
		err = rerr
	}
	if cerr := buf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(fmt.Errorf("prepare buffer: %w", err))
	}
}

// A record that is not an event (a corrupt one) cannot be sent: the
// forwarder moves it, as it is, to the dead-letter queue, and the events
// around it are delivered.
func TestUndecodableRecordIsDeadLettered(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t, rcv.URL())
	good := func(id string) []byte {
		e := cloudevent.Event{ID: id, Source: "/s", Type: "t"}
		return cloudevent.Encode(&e)
	}
	appendRecords(t, cfg.Buffer, queueName("cloud"), [][]byte{good("a"), []byte("\xce\x09garbage"), []byte(`{"not":"an event"}`), good("b")})
	gw := start(t, cfg)
	got := rcv.WaitFor(2, 10*time.Second)
	if got[0].ID() != "a" || got[1].ID() != "b" {
		t.Errorf("delivered %v", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gw.g.buffer().Stats().Queues[deadLetterName("cloud")].Records != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("dead letters: %+v", gw.g.buffer().Stats().Queues)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
