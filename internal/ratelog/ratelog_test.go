package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// lines records what a Limiter writes.
type lines struct {
	mu   sync.Mutex
	recs []map[string]any
}

func (h *lines) Enabled(context.Context, slog.Level) bool { return true }
func (h *lines) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lines) WithGroup(string) slog.Handler            { return h }
func (h *lines) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message, "level": r.Level}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	h.mu.Lock()
	h.recs = append(h.recs, m)
	h.mu.Unlock()
	return nil
}

func (h *lines) get() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.recs...)
}

func TestLimiter(t *testing.T) {
	h := &lines{}
	l := New(slog.New(h), slog.LevelWarn, "auth failed", time.Hour)
	l.Log("remote_addr", "10.0.0.1:1")
	for i := range 5 {
		l.Log("remote_addr", "10.0.0.2:"+string(rune('0'+i)))
	}
	got := h.get()
	if len(got) != 1 || got[0]["remote_addr"] != "10.0.0.1:1" || got[0]["level"] != slog.LevelWarn || got[0]["repeated"] != nil {
		t.Fatalf("first event not logged alone at once: %v", got)
	}
	l.tick(l.gen) // the interval ends
	got = h.get()
	if len(got) != 2 || got[1]["msg"] != "auth failed" || got[1]["remote_addr"] != "10.0.0.2:4" || got[1]["repeated"] != int64(5) || got[1]["interval"] != time.Hour {
		t.Fatalf("summary line: %v", got)
	}
	// A quiet interval ends the cycle; the next event is logged at once.
	l.tick(l.gen)
	if l.timer != nil {
		t.Fatal("interval still running after a quiet one")
	}
	l.Log("remote_addr", "10.0.0.3:1")
	if got = h.get(); len(got) != 3 || got[2]["remote_addr"] != "10.0.0.3:1" {
		t.Fatalf("event after a quiet interval: %v", got)
	}
	// Stop writes what is pending; a late tick of the stopped interval
	// does nothing.
	l.Log("remote_addr", "10.0.0.4:1")
	gen := l.gen
	l.Stop()
	l.tick(gen)
	if got = h.get(); len(got) != 4 || got[3]["repeated"] != int64(1) {
		t.Fatalf("Stop: %v", got)
	}
	l.Stop() // twice is fine
}

// The timer writes the summary by itself.
func TestLimiterTimer(t *testing.T) {
	h := &lines{}
	l := New(slog.New(h), slog.LevelInfo, "denied", 10*time.Millisecond)
	defer l.Stop()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				l.Log("client", "c")
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	total := 0
	for time.Now().Before(deadline) {
		total = 0
		for _, r := range h.get() {
			if n, ok := r["repeated"].(int64); ok {
				total += int(n)
			} else {
				total++
			}
		}
		if total == 800 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if total != 800 {
		t.Fatalf("lines account for %d of 800 events: %v", total, h.get())
	}
}
