package rules

import (
	"testing"
	"time"
)

// The wall clock stepping back an hour does not hold a window open for an
// hour: the bucket in hand closes one "every" later, in the new time.
func TestWindowAfterClockStepBack(t *testing.T) {
	s := mustCompile(t, `
rules:
  - name: avg
    actions:
      - aggregate: { value: data.t, every: 1m, emit: { type: io.acme.avg1m, data: "{'avg': avg, 'n': count}" } }
`)
	t0 := time.Date(2026, 1, 1, 12, 0, 10, 0, time.UTC)
	s.Evaluate(reading("t1", map[string]any{"t": 20.0}), t0)
	back := t0.Add(-time.Hour) // 11:00:10
	s.Evaluate(reading("t1", map[string]any{"t": 30.0}), back)
	if got := s.Tick(back.Add(30 * time.Second)); len(got) != 0 {
		t.Fatalf("a window closed before its minute ended: %+v", got)
	}
	got := s.Tick(back.Add(50 * time.Second)) // 11:01:00
	if len(got) != 1 {
		t.Fatalf("Tick a minute after the step back emitted %d events, want 1", len(got))
	}
	d, _ := got[0].Event.Data.(map[string]any)
	if d["n"] != 2 || d["avg"] != 25.0 || !got[0].Event.Time.Equal(back.Add(50*time.Second)) {
		t.Errorf("window = %v at %v, want avg 25 of 2 at 11:01", d, got[0].Event.Time)
	}
}
