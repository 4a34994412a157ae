package overload

import (
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Config is the overload section of the gateway configuration. Start from
// DefaultConfig: zero values are not replaced by defaults.
type Config struct {
	// FairShare, when true, limits the intake while an uplink delivers but
	// devices publish faster than it drains the buffer: publishers above
	// their fair share of what the uplinks deliver are read more slowly
	// (counted in edgegate_mqtt_fair_share_delayed_total and logged),
	// devices within it are not slowed, and the backlog stops growing. It
	// never engages during an outage (failing sends), when buffering
	// everything is the point. false: every message the buffer has room
	// for is taken, and every event waits behind the whole backlog.
	FairShare bool `yaml:"fair_share"`
	// TargetDelay is how long, at the rate the uplink delivers, the
	// backlog built up by an overload may grow before the intake is
	// limited; the limit then holds it near half of this, which is about
	// what events of devices within their share wait in the buffer.
	// 100ms to 1m.
	TargetDelay time.Duration `yaml:"target_delay"`
}

// DefaultConfig returns fair share on, with a target delay of 1 s.
func DefaultConfig() Config {
	return Config{FairShare: true, TargetDelay: time.Second}
}

// Validate reports every problem in c, each a *yamlconf.Error with its
// path from the section's root.
func (c Config) Validate() error {
	var errs yamlconf.List
	if c.TargetDelay < 100*time.Millisecond || c.TargetDelay > time.Minute {
		errs.Add(yamlconf.Key("target_delay"), "must be between 100ms and 1m, got %s", c.TargetDelay)
	}
	return errs.Err()
}
