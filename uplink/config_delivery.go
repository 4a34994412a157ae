package uplink

import (
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// DeliveryConfig configures how Delivery moves batches to a Sender: their
// size, the retries of failed sends, the pace of a replayed backlog and
// where refused events go. It is apart from the sender's own settings, as
// Telegraf keeps OutputConfig apart from the plugin's.
type DeliveryConfig struct {
	// Batch bounds the events sent at once.
	Batch BatchConfig `yaml:"batch"`
	// Retry configures the backoff between failed sends.
	Retry RetryConfig `yaml:"retry"`
	// Replay paces the drain of events that waited out an outage.
	Replay ReplayConfig `yaml:"replay"`
	// DeadLetter is where events go that the endpoint refuses for good or
	// that exhaust retry.max_attempts: "" keeps them in this uplink's
	// dead-letter queue in the buffer; otherwise the name of another
	// uplink. They carry the failure as extension attributes.
	DeadLetter string `yaml:"dead_letter"`
}

// BatchConfig bounds the record slices given to Send. The caller (the
// forward loop) batches; Sender splits batch requests by MaxBytes again.
type BatchConfig struct {
	// MaxEvents is the largest number of events sent at once (in one
	// request in batch mode).
	MaxEvents int `yaml:"max_events"`
	// MaxBytes is the largest request body in batch mode; larger batches
	// are split into several requests. A single larger event is sent alone.
	MaxBytes yamlconf.ByteSize `yaml:"max_bytes"`
	// Linger is how long to wait for a batch to fill; 0 sends whatever is
	// available.
	Linger time.Duration `yaml:"linger"`
}

// ReplayConfig paces the drain of a backlog after an outage.
type ReplayConfig struct {
	// MaxRate caps events/s sent while replaying a backlog; 0 drains at
	// full speed. Live events are not slowed once the backlog is gone.
	MaxRate float64 `yaml:"max_rate"`
}

// RetryConfig configures exponential backoff with jitter (Delivery's backoff).
type RetryConfig struct {
	// MaxAttempts bounds the attempts for one event before it is
	// dead-lettered; 0 (default) retries forever, so an outage never turns
	// into data loss.
	MaxAttempts int `yaml:"max_attempts"`
	// Initial is the first delay.
	Initial time.Duration `yaml:"initial"`
	// Max caps every delay.
	Max time.Duration `yaml:"max"`
	// Multiplier grows the delay after each failure; ≥ 1.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter spreads each delay uniformly by ±Jitter (a fraction in [0, 1];
	// 0 is no jitter).
	Jitter float64 `yaml:"jitter"`
}

// Delivery defaults, set by DefaultConfig and before an uplinks entry is
// decoded.
const (
	DefaultBatchMaxEvents                    = 500
	DefaultBatchMaxBytes   yamlconf.ByteSize = 1 << 20
	DefaultRetryInitial                      = 200 * time.Millisecond
	DefaultRetryMax                          = 30 * time.Second
	DefaultRetryMultiplier                   = 2.0
	DefaultRetryJitter                       = 0.2
)

// Limits enforced by Validate.
const (
	maxEventsLimit                   = 100_000
	maxBytesLimit  yamlconf.ByteSize = 64 << 20
	minBytesLimit  yamlconf.ByteSize = 1 << 10
)

// SetDefaults sets every delivery default.
func (d *DeliveryConfig) SetDefaults() {
	d.Batch = BatchConfig{MaxEvents: DefaultBatchMaxEvents, MaxBytes: DefaultBatchMaxBytes}
	d.Retry = RetryConfig{
		Initial: DefaultRetryInitial, Max: DefaultRetryMax,
		Multiplier: DefaultRetryMultiplier, Jitter: DefaultRetryJitter,
	}
}

// Validate reports every problem in d, each a *yamlconf.Error with its path
// from the uplinks entry. Whether DeadLetter names an uplink is
// ValidateList's to check.
func (d DeliveryConfig) Validate() error {
	var errs yamlconf.List
	batch, retry := yamlconf.Key("batch"), yamlconf.Key("retry")
	if d.Batch.MaxEvents < 1 || d.Batch.MaxEvents > maxEventsLimit {
		errs.Add(batch.Key("max_events"), "must be between 1 and %d", maxEventsLimit)
	}
	if d.Batch.MaxBytes < minBytesLimit || d.Batch.MaxBytes > maxBytesLimit {
		errs.Add(batch.Key("max_bytes"), "must be between %s and %s", minBytesLimit, maxBytesLimit)
	}
	if d.Batch.Linger < 0 {
		errs.Add(batch.Key("linger"), "must not be negative")
	}
	if d.Retry.Initial <= 0 {
		errs.Add(retry.Key("initial"), "must be positive")
	}
	if d.Retry.Max < d.Retry.Initial {
		errs.Add(retry.Key("max"), "must be at least retry.initial (%s)", d.Retry.Initial)
	}
	if d.Retry.MaxAttempts < 0 {
		errs.Add(retry.Key("max_attempts"), "must be ≥ 0 (0 retries forever)")
	}
	if d.Retry.Multiplier < 1 || d.Retry.Multiplier > 100 {
		errs.Add(retry.Key("multiplier"), "must be between 1 and 100")
	}
	if d.Retry.Jitter < 0 || d.Retry.Jitter > 1 {
		errs.Add(retry.Key("jitter"), "must be between 0 and 1")
	}
	if d.Replay.MaxRate < 0 {
		errs.Add(yamlconf.Key("replay").Key("max_rate"), "must be ≥ 0 (0 drains at full speed)")
	}
	return errs.Err()
}
