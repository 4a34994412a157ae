package uplink

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
)

// testBatch is a Batch whose events were all appended at one instant.
type testBatch struct {
	events   []*cloudevent.Event
	appended time.Time
}

func (b testBatch) Events() []*cloudevent.Event { return b.events }
func (b testBatch) AppendedAt(int) time.Time    { return b.appended }

// newTestDelivery builds a Delivery with fast retries for s.
func newTestDelivery(tb testing.TB, s Sender, mod func(*Config)) (*Delivery, *metrics.Set) {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Name = "test"
	cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, 5*time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	set := metrics.NewSet()
	return NewDelivery(cfg, s, nil, set), set
}

func counter(set *metrics.Set, name string) uint64 {
	return set.GetOrCreateCounter(name + `{uplink="test"}`).Get()
}

// A batch that waits out an outage is replayed: each of its events counts
// once in edgegate_forward_events_replayed_total and costs one token of
// replay.max_rate, however many retries the outage took.
func TestReplayCountedOnce(t *testing.T) {
	const n, failures = 10, 3
	var calls atomic.Int32
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		if calls.Add(1) <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := newTestSender(t, rc.URL(), ModeBatch, nil)
	// A rate so low that refills do not show; the burst is batch.max_events.
	d, set := newTestDelivery(t, s, func(c *Config) { c.Replay.MaxRate = 0.001 })
	records := testRecords(t, n, 2)
	// Appended after the Delivery started: live at first, replayed once
	// the first send failed.
	dead, err := d.Deliver(context.Background(), context.Background(), testBatch{records, time.Now()})
	if err != nil || len(dead) != 0 {
		t.Fatalf("Deliver = %d dead, %v", len(dead), err)
	}
	if got := calls.Load(); got != failures+1 {
		t.Fatalf("%d sends, want %d", got, failures+1)
	}
	got := rc.Views()
	checkIDs(t, got, records, nil)
	for _, e := range got {
		if e.Attrs[ExtReplayed] != "true" {
			t.Errorf("event %s not marked replayed", e.Attrs["id"])
		}
	}
	if c := counter(set, "edgegate_forward_events_replayed_total"); c != n {
		t.Errorf("replayed_total = %d, want %d (one per distinct event)", c, n)
	}
	if c := counter(set, "edgegate_forward_send_failures_total"); c != failures {
		t.Errorf("send_failures_total = %d, want %d", c, failures)
	}
	if c := counter(set, "edgegate_forward_events_delivered_total"); c != n {
		t.Errorf("delivered_total = %d, want %d", c, n)
	}
	charged := float64(d.limiter.Burst()) - d.limiter.Tokens()
	if math.Abs(charged-n) > 0.5 {
		t.Errorf("replay limiter charged %.1f tokens, want %d (one per event)", charged, n)
	}
}

// Events appended before the Delivery started (a restart) are replayed
// from the first send, and also count once.
func TestReplayAfterRestart(t *testing.T) {
	rc := newReceiver(t, nil)
	d, set := newTestDelivery(t, newTestSender(t, rc.URL(), ModeBatch, nil), nil)
	records := testRecords(t, 5, 1)
	old := testBatch{records, time.Now().Add(-time.Minute)}
	if _, err := d.Deliver(context.Background(), context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if c := counter(set, "edgegate_forward_events_replayed_total"); c != 5 {
		t.Errorf("replayed_total = %d, want 5", c)
	}
	fresh := testBatch{testRecords(t, 3, 1), time.Now()}
	if _, err := d.Deliver(context.Background(), context.Background(), fresh); err != nil {
		t.Fatal(err)
	}
	got := rc.Views()
	for i, e := range got {
		if want := fmt.Sprint(i < 5); (e.Attrs[ExtReplayed] == "true") != (want == "true") {
			t.Errorf("event %d (%s) replayed=%q, want %s", i, e.Attrs["id"], e.Attrs[ExtReplayed], want)
		}
	}
	if c := counter(set, "edgegate_forward_events_replayed_total"); c != 5 {
		t.Errorf("replayed_total after a live batch = %d, want 5", c)
	}
}

// checkIDs checks that every record's id except skip's arrived exactly once
// and no other id arrived.
func checkIDs(t *testing.T, got []ceconform.Event, records []*cloudevent.Event, skip map[string]bool) {
	t.Helper()
	count := map[string]int{}
	for _, e := range got {
		count[e.Attrs["id"]]++
	}
	for _, r := range records {
		id := r.ID
		if want := map[bool]int{true: 0, false: 1}[skip[id]]; count[id] != want {
			t.Errorf("event %s arrived %d times, want %d", id, count[id], want)
		}
		delete(count, id)
	}
	for id, c := range count {
		t.Errorf("unexpected event %s arrived %d times", id, c)
	}
}

// A batch with a poison event in the middle and a retryable failure further
// on: every good event arrives exactly once in binary and structured mode,
// where each event has its own response (an event that got its 2xx is never
// sent again when a neighbour is refused), and at least once in batch
// mode, which is all-or-nothing per request and bisects. The poison event
// comes back with its failure attached, and only it.
func TestDeliverPoisonAndRetryMidBatch(t *testing.T) {
	const poisonID, flakyID = "evt-0017", "evt-0025"
	for _, mode := range []string{ModeBinary, ModeStructured, ModeBatch} {
		t.Run(mode, func(t *testing.T) {
			var flaked atomic.Bool
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
				for _, e := range evs {
					switch {
					case e.Attrs["id"] == poisonID:
						return http.StatusBadRequest
					case e.Attrs["id"] == flakyID && !flaked.Swap(true):
						return http.StatusServiceUnavailable
					}
				}
				return http.StatusOK
			})
			s := newTestSender(t, rc.URL(), mode, nil)
			d, set := newTestDelivery(t, s, nil)
			records := testRecords(t, 40, 4)
			dead, err := d.Deliver(context.Background(), context.Background(), testBatch{records, time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if !flaked.Load() {
				t.Fatal("the retryable failure was not exercised")
			}
			got := rc.Views()
			if mode == ModeBatch {
				count := map[string]int{}
				for _, e := range got {
					count[e.Attrs["id"]]++
				}
				for _, r := range records {
					if id := r.ID; id != poisonID && count[id] == 0 {
						t.Errorf("event %s not delivered", id)
					}
				}
			} else {
				checkIDs(t, got, records, map[string]bool{poisonID: true})
			}
			if c := counter(set, "edgegate_forward_events_delivered_total"); c < uint64(len(records)-1) {
				t.Errorf("delivered_total = %d, want ≥ %d", c, len(records)-1)
			}
			if len(dead) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dead))
			}
			v := validStructured(t, recordJSON(dead[0]))
			if v.Attrs["id"] != poisonID || v.Attrs[ExtErrorCode] != "400" || v.Attrs[ExtErrorDest] != "test" ||
				v.Attrs[ExtAttempts] != "1" || !strings.Contains(v.Attrs[ExtError], "400 Bad Request") {
				t.Errorf("dead letter attributes: %v", v.Attrs)
			}
			t.Logf("%s: %d events received", mode, len(got))
		})
	}
}

// TestDeliverPerEventOrderUnderRetries: in binary and structured mode, with
// many requests in flight and 503s scattered through the batch (each
// refused event succeeds when sent again), every event arrives exactly
// once and each source's events arrive in order: a retry never lets a
// later event of its source overtake it.
func TestDeliverPerEventOrderUnderRetries(t *testing.T) {
	const sources, events = 20, 400
	for _, mode := range []string{ModeBinary, ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			last := map[string]int{}
			refused := map[string]bool{}
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
				e := evs[0]
				seq, _ := strconv.Atoi(e.Attrs["seq"])
				mu.Lock()
				defer mu.Unlock()
				if n, _ := strconv.Atoi(strings.TrimPrefix(e.Attrs["id"], "evt-")); n%37 == 5 && !refused[e.Attrs["id"]] {
					refused[e.Attrs["id"]] = true
					return http.StatusServiceUnavailable
				}
				prev, seen := last[e.Attrs["source"]]
				if seen && seq != prev+1 || !seen && seq != 0 {
					t.Errorf("source %s: seq %d after %d", e.Attrs["source"], seq, prev)
				}
				last[e.Attrs["source"]] = seq
				return http.StatusOK
			})
			s := newTestSender(t, rc.URL(), mode, func(c *Config) { c.HTTP.MaxInFlight = 16 })
			d, _ := newTestDelivery(t, s, nil)
			records := testRecords(t, events, sources)
			dead, err := d.Deliver(context.Background(), context.Background(), testBatch{records, time.Now()})
			if err != nil || len(dead) != 0 {
				t.Fatalf("Deliver: %v, %d dead", err, len(dead))
			}
			if len(refused) == 0 {
				t.Fatal("no request was refused")
			}
			checkIDs(t, rc.Views(), records, nil) // the receiver keeps the 2xx ones
			if maxIn := rc.Stats().MaxInflight; maxIn > 16 {
				t.Errorf("%d requests at once, max_in_flight 16", maxIn)
			}
		})
	}
}

// TestSendEachCancelledInFlight: when the context ends with requests in
// flight (shutdown), Send returns a retryable error wrapping the cause at
// once, and Accepted names exactly the events whose 2xx arrived: per
// source a prefix, so what the caller sends again keeps each source's
// order and nothing accepted goes twice.
func TestSendEachCancelledInFlight(t *testing.T) {
	const sources, perSource, held = 4, 6, 3 // seq >= held waits until cancelled
	release := make(chan struct{})
	var waiting atomic.Int32
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		if seq, _ := strconv.Atoi(evs[0].Attrs["seq"]); seq >= held {
			waiting.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	defer close(release)
	s := newTestSender(t, rc.URL(), ModeBinary, func(c *Config) { c.HTTP.MaxInFlight = 8 })
	records := testRecords(t, sources*perSource, sources)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for waiting.Load() < sources {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := s.Send(ctx, records)
	retry, _ := classify(err)
	if err == nil || !retry || !errors.Is(err, context.Canceled) {
		t.Fatalf("Send: %v (retryable %v)", err, retry)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not an *Error: %v", err)
	}
	want := []int{}
	for i := range records {
		if i/sources < held { // testRecords interleaves: record i has seq i/sources
			want = append(want, i)
		}
	}
	if !slices.Equal(e.Accepted, want) {
		t.Errorf("accepted %v, want %v", e.Accepted, want)
	}
}
