package mqtt

import (
	"log/slog"
	"sync"
	"time"
)

// logEvery is the least time between two log lines of one kind from a
// rateLog; the lines in between are counted in the next one's "suppressed".
const logEvery = 10 * time.Second

// rateLog writes Warn lines about what devices do wrong (refused
// connections, flooding, reserved topics) at most once per logEvery per
// kind, so that a misbehaving device cannot flood the log. Every event is
// also counted in a metric. Safe for concurrent use.
type rateLog struct {
	l     *slog.Logger
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*rateLogKind
}

type rateLogKind struct {
	last       time.Time
	suppressed int
}

func newRateLog(l *slog.Logger, every time.Duration) *rateLog {
	return &rateLog{l: l, every: every, kinds: make(map[string]*rateLogKind)}
}

// log writes msg with args unless a line of this kind was written less
// than every ago.
func (r *rateLog) log(kind, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	k := r.kinds[kind]
	if k == nil {
		k = &rateLogKind{}
		r.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < r.every {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.l.Warn(msg, args...)
}
