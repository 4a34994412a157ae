package buffer

import (
	"strings"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Policy says what Append does when the buffer is full.
type Policy string

const (
	// DropOldest makes room by deleting the oldest records, across all
	// queues. It is the default.
	DropOldest Policy = "drop_oldest"
	// Reject refuses the Append with ErrFull and stores nothing.
	Reject Policy = "reject"
)

// Config configures a Buffer. It is the "buffer" section of edgegate.yaml.
type Config struct {
	// Dir is the directory of the buffer's Badger database; mqtt uplinks
	// with session_store: file keep their state beside it.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the logical bytes (record payloads) stored across all
	// queues.
	MaxBytes yamlconf.ByteSize `yaml:"max_bytes"`
	// MaxAge is how long a record is kept; older records are removed and
	// counted as expired.
	MaxAge time.Duration `yaml:"max_age"`
	// Overflow is what happens to a new event when MaxBytes would be
	// exceeded: drop_oldest (the oldest events of any queue are deleted to
	// make room, counted) or reject (the event is refused: MQTT 5 devices
	// get PUBACK 0x97, MQTT 3.1.1 devices are disconnected and resend).
	Overflow Policy `yaml:"overflow"`
	// MinFreeBytes is the free space kept for the rest of the system on the
	// file system of Dir. New events are refused, whatever the overflow
	// policy, while free space is below it plus the room Badger needs to
	// flush and compact what the buffer holds (see the package doc, "Disk
	// space"). At least 16MiB.
	MinFreeBytes yamlconf.ByteSize `yaml:"min_free_bytes"`
	// Retain keeps delivered records for this long after they were
	// appended, in a history per queue, so that they can be replayed on
	// demand. Retained records count in MaxBytes, are removed first when
	// room is needed, and never cause a new event to be refused. 0 (the
	// default) keeps no history. At most MaxAge.
	Retain time.Duration `yaml:"retain"`
	// CommitInterval is the least time between two commits (fsyncs) of
	// new events: events arriving within it of the last commit wait and
	// share the next one. Each commit writes at least one whole page of
	// Badger's log, so on flash storage (an SD card) fewer, larger commits
	// mean less wear: the default, 2ms, halved the bytes written per
	// 200-byte event at a steady 1,000 events/s (4,488 -> 2,106) and cut
	// them by a third at 5,000 (2,000 -> 1,267), with less CPU and the
	// same p99 latency (edgegate bench --commit-interval). An event
	// arriving after a quiet spell is committed at once. 0 commits as soon
	// as the previous commit is done (lowest latency, most writes). At
	// most 100ms.
	CommitInterval time.Duration `yaml:"commit_interval"`
}

// maxCommitInterval bounds commit_interval: longer waits hold every
// device's acknowledgement for no further gain.
const maxCommitInterval = 100 * time.Millisecond

// MinFreeFloor is the smallest min_free_bytes accepted: the size of the
// disk reserve, so that the disk guard refuses appends before the reserve
// is given up.
const MinFreeFloor yamlconf.ByteSize = 16 << 20

// DefaultConfig returns the defaults, with Dir unset.
func DefaultConfig() Config {
	return Config{
		MaxBytes:       512 << 20,
		MaxAge:         168 * time.Hour,
		Overflow:       DropOldest,
		MinFreeBytes:   64 << 20,
		CommitInterval: 2 * time.Millisecond,
	}
}

// Validate reports every problem in c, each a *yamlconf.Error with its
// path from the section's root.
func (c Config) Validate() error {
	var errs yamlconf.List
	if strings.TrimSpace(c.Dir) == "" {
		errs.Add(yamlconf.Key("dir"), "must be set")
	}
	if c.MaxBytes <= 0 {
		errs.Add(yamlconf.Key("max_bytes"), "must be > 0")
	}
	if c.MaxAge <= 0 {
		errs.Add(yamlconf.Key("max_age"), "must be > 0")
	}
	switch c.Overflow {
	case DropOldest, Reject:
	default:
		errs.Add(yamlconf.Key("overflow"), "must be %q or %q, not %q", DropOldest, Reject, c.Overflow)
	}
	if c.Retain < 0 || c.Retain > c.MaxAge && c.MaxAge > 0 {
		errs.Add(yamlconf.Key("retain"), "must be between 0 (no history) and max_age (%s)", c.MaxAge)
	}
	if c.CommitInterval < 0 || c.CommitInterval > maxCommitInterval {
		errs.Add(yamlconf.Key("commit_interval"), "must be between 0 and %s", maxCommitInterval)
	}
	if c.MinFreeBytes < MinFreeFloor {
		errs.Add(yamlconf.Key("min_free_bytes"), "must be at least %s: Badger needs room to flush and compact after appends stop (a full disk kills it with SIGBUS)", MinFreeFloor)
	}
	return errs.Err()
}
