package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter logs one kind of event at most once per interval.
type Limiter struct {
	log      *slog.Logger
	level    slog.Level
	msg      string
	interval time.Duration

	mu      sync.Mutex
	timer   *time.Timer // set while an interval runs
	gen     int         // counts intervals stopped early: a late tick of one is ignored
	pending int         // events since the last line
	last    []any       // the attributes of the last of them
}

// New returns a Limiter that logs msg at level at most once per interval.
func New(log *slog.Logger, level slog.Level, msg string, interval time.Duration) *Limiter {
	return &Limiter{log: log, level: level, msg: msg, interval: interval}
}

// Log records one event with its attributes (slog key-value pairs). Outside
// an interval the line is written at once and an interval starts; within
// one, the event is counted and the line written when the interval ends
// reads: msg, the last event's attributes, "repeated" (the events since
// the previous line) and "interval".
func (l *Limiter) Log(args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer == nil {
		l.log.Log(context.Background(), l.level, l.msg, args...)
		gen := l.gen
		l.timer = time.AfterFunc(l.interval, func() { l.tick(gen) })
		return
	}
	l.pending++
	l.last = args
}

// tick ends an interval: it writes the summary and starts the next
// interval when events came in, or ends the quiet one.
func (l *Limiter) tick(gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer == nil || gen != l.gen {
		return // stopped
	}
	if l.pending == 0 {
		l.timer = nil
		return
	}
	l.flush()
	l.timer.Reset(l.interval)
}

// flush writes the summary of the pending events; l.mu is held.
func (l *Limiter) flush() {
	args := append(l.last[:len(l.last):len(l.last)], "repeated", l.pending, "interval", l.interval)
	l.log.Log(context.Background(), l.level, l.msg, args...)
	l.pending, l.last = 0, nil
}

// Stop writes the summary of pending events and ends the interval. The
// Limiter can be used again afterwards.
func (l *Limiter) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer == nil {
		return
	}
	l.timer.Stop()
	l.timer = nil
	l.gen++
	if l.pending > 0 {
		l.flush()
	}
}
