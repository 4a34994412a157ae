package configchannel

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"
)

// The channels' sources, as the apply path names them.
const (
	SourcePull = "pull"
	SourceMQTT = "mqtt"
)

// MaxDocument is the largest configuration document a channel accepts.
const MaxDocument = 1 << 20

// Update is a document a channel received, for the apply path.
type Update struct {
	Source    string // SourcePull or SourceMQTT
	Origin    string // the URL (without its query) or the topic
	Data      []byte // the YAML document, possibly with an embedded signature line
	Signature []byte // a detached signature (the Edgegate-Signature header), if any
}

// Result is what the apply path did with an Update it accepted.
type Result struct {
	Applied   bool   // now in effect
	Unchanged bool   // equal to the running configuration: nothing to do
	Version   int64  // the version now running
	Hash      string // its hash
}

// ApplyFunc is the gateway's apply path. An error means the document was
// refused and the running configuration stays; it may be a *Rejection.
// It blocks until the apply is done.
type ApplyFunc func(ctx context.Context, u Update) (Result, error)

// Rejection is a refusal with the apply path's short reason ("invalid",
// "signature", "stale", ...), which the MQTT status reports.
type Rejection struct {
	Reason string
	Err    error
}

func (r *Rejection) Error() string { return r.Err.Error() }
func (r *Rejection) Unwrap() error { return r.Err }

// errorLines splits an error (possibly an errors.Join of many) into its
// lines, for a report.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// jittered spreads d by ±j at random.
func jittered(d time.Duration, j float64) time.Duration {
	if j <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
}

// backoff is the wait after n consecutive failures (n ≥ 1): from first,
// doubling, capped at limit.
func backoff(n int, first, limit time.Duration) time.Duration {
	d := first
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// sleep waits d or until ctx is done, and reports whether it waited all.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rejectionReason is the reason of a *Rejection in err, or "".
func rejectionReason(err error) string {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// randFloat is a random number in [0, 1).
func randFloat() float64 { return rand.Float64() }
