package uplink

import (
	"math"
	"math/rand/v2"
	"time"
)

// backoff computes delays between failed sends: Initial, then multiplied by
// Multiplier after each failure up to Max, each spread uniformly by ±Jitter.
// A jittered delay never exceeds Max (at the cap, jitter only shortens it).
//
// A backoff is not safe for concurrent use; each Delivery owns one.
type backoff struct {
	cfg     RetryConfig
	rnd     *rand.Rand // nil: the runtime's concurrency-safe generator
	attempt int
}

// newBackoff returns a backoff for cfg. src supplies randomness for jitter;
// nil uses the runtime generator. Pass a seeded source (rand.NewPCG) for
// deterministic delays in tests. cfg is a validated retry section: an
// explicit jitter of 0 means no jitter.
func newBackoff(cfg RetryConfig, src rand.Source) *backoff {
	b := &backoff{cfg: cfg}
	if b.cfg.Max < b.cfg.Initial {
		b.cfg.Max = b.cfg.Initial
	}
	if src != nil {
		b.rnd = rand.New(src)
	}
	return b
}

// next returns the delay before the next attempt and advances the sequence.
func (b *backoff) next() time.Duration {
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

// reset starts the sequence again at Initial; call it after a success.
func (b *backoff) reset() { b.attempt = 0 }

func (b *backoff) float64() float64 {
	if b.rnd != nil {
		return b.rnd.Float64()
	}
	return rand.Float64()
}
