package uplink

import (
	"sync"
	"sync/atomic"
	"time"
)

// States of an uplink (Health.State).
const (
	// StateIdle: no batch in hand, and the last send succeeded (or none
	// was made yet). An endpoint that went down while nothing was to be
	// sent is still idle: health is learnt from sends.
	StateIdle = "idle"
	// StateDelivering: a batch is being sent and no send of it has failed
	// for a reason worth retrying.
	StateDelivering = "delivering"
	// StateFailing: the last send failed for a reason worth retrying
	// (connection, timeout, 408, 429, 5xx, credentials); the batch waits
	// for its next attempt.
	StateFailing = "failing"
)

// Health is what a Delivery has seen of its endpoint: a snapshot for
// /status and the status page.
type Health struct {
	State string // StateIdle, StateDelivering or StateFailing
	// LastSuccess is when a send last succeeded; zero: never since start.
	LastSuccess time.Time
	// LastFailure and LastError are the last failed send (retryable or
	// not) and its error; zero and "" when none failed since start. The
	// error never holds secrets (see Error).
	LastFailure time.Time
	LastError   string
	// ConsecutiveFailures counts the retryable failures since the last
	// success.
	ConsecutiveFailures int
	// Delivered counts the events delivered since start.
	Delivered uint64
}

// health records what Deliver sees. Deliver writes it from one goroutine;
// Health reads it from any.
type health struct {
	busy atomic.Bool // a batch is in hand

	mu          sync.Mutex
	lastSuccess time.Time
	lastFailure time.Time
	lastError   string
	consecutive int
}

func (h *health) succeeded(now time.Time) {
	h.mu.Lock()
	h.lastSuccess, h.consecutive = now, 0
	h.mu.Unlock()
}

func (h *health) failed(now time.Time, err error, retryable bool) {
	msg := err.Error()
	const maxLen = 512
	if len(msg) > maxLen {
		msg = msg[:maxLen] + "…"
	}
	h.mu.Lock()
	h.lastFailure, h.lastError = now, msg
	if retryable {
		h.consecutive++
	}
	h.mu.Unlock()
}

// Health returns a snapshot of what the delivery loop has seen. It is safe
// for concurrent use.
func (d *Delivery) Health() Health {
	d.health.mu.Lock()
	h := Health{
		LastSuccess:         d.health.lastSuccess,
		LastFailure:         d.health.lastFailure,
		LastError:           d.health.lastError,
		ConsecutiveFailures: d.health.consecutive,
	}
	d.health.mu.Unlock()
	h.Delivered = d.delivered.Get()
	switch {
	case !d.up.Load():
		h.State = StateFailing
	case d.health.busy.Load():
		h.State = StateDelivering
	default:
		h.State = StateIdle
	}
	return h
}
