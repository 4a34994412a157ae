package configchannel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/internal/yamlconf"
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

// Percent is a fraction written as a percentage ("10%") in YAML.
type Percent float64

// UnmarshalYAML accepts "N%" with 0 ≤ N ≤ 100.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	s, ok := strings.CutSuffix(strings.TrimSpace(n.Value), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if n.Kind != yaml.ScalarNode || !ok || err != nil || v < 0 || v > 100 || math.IsNaN(v) {
		return &yamlconf.Error{Msg: fmt.Sprintf("want a percentage from 0%% to 100%%, like \"10%%\", got %q", n.Value)}
	}
	*p = Percent(v / 100)
	return nil
}

// MarshalYAML writes the percentage.
func (p Percent) MarshalYAML() (any, error) { return p.String(), nil }

// String is the percentage as YAML takes it: "10%".
func (p Percent) String() string {
	return strconv.FormatFloat(float64(p)*100, 'f', -1, 64) + "%"
}

// JSONSchema describes the YAML form for editors: a string "N%".
func (Percent) JSONSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": `^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*%\s*$`}
}

// JSONSchemaKind names the type in the configuration reference.
func (Percent) JSONSchemaKind() string { return "percentage" }

// jittered spreads d by ±j at random.
func jittered(d time.Duration, j Percent) time.Duration {
	if j <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + float64(j)*(2*rand.Float64()-1)))
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
