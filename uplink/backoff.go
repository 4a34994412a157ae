package uplink

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes delays between failed sends: Initial, then multiplied by
// Multiplier after each failure up to Max, each spread uniformly by ±Jitter.
// A jittered delay never exceeds Max (at the cap, jitter only shortens it).
//
// A Backoff is not safe for concurrent use; each forward loop owns one.
type Backoff struct {
	cfg     RetryConfig
	rnd     *rand.Rand // nil: the runtime's concurrency-safe generator
	attempt int
}

// NewBackoff returns a Backoff for cfg. src supplies randomness for jitter;
// nil uses the runtime generator. Pass a seeded source (rand.NewPCG) for
// deterministic delays in tests. Zero fields of cfg take their defaults.
func NewBackoff(cfg RetryConfig, src rand.Source) *Backoff {
	c := Config{DeliveryConfig: DeliveryConfig{Retry: cfg}}
	c.ApplyDefaults()
	b := &Backoff{cfg: c.Retry}
	if b.cfg.Max < b.cfg.Initial {
		b.cfg.Max = b.cfg.Initial
	}
	if src != nil {
		b.rnd = rand.New(src)
	}
	return b
}

// Next returns the delay before the next attempt and advances the sequence.
func (b *Backoff) Next() time.Duration {
	base := float64(b.cfg.Initial) * math.Pow(b.cfg.Multiplier, float64(b.attempt))
	maxD := float64(b.cfg.Max)
	if base >= maxD || math.IsInf(base, 0) || math.IsNaN(base) {
		base = maxD
	} else {
		b.attempt++
	}
	j := min(max(b.cfg.Jitter, 0), 1)
	lo := base * (1 - j)
	hi := min(base*(1+j), maxD)
	return time.Duration(lo + b.float64()*(hi-lo))
}

// Reset starts the sequence again at Initial; call it after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

func (b *Backoff) float64() float64 {
	if b.rnd != nil {
		return b.rnd.Float64()
	}
	return rand.Float64()
}
