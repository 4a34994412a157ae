package uplink

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/cloudevent"
)

// Sender delivers events to one cloud endpoint.
type Sender interface {
	// Send delivers the events and returns nil only when the endpoint
	// accepted all of them. Each is written as it is (Replayed renders as
	// replayed=true); an event a sender cannot write or that is invalid
	// (see cloudevent.Event.Validate) fails the call with a *RecordError.
	// On failure it returns an *Error (see Delivery): events its Accepted
	// field names were delivered; others may have been too, so the caller
	// sends all the rest again (at-least-once; duplicates keep their id).
	// Send is safe for concurrent use and blocks until done or ctx is done.
	// It neither modifies the events nor retains them after it returns.
	Send(ctx context.Context, events []*cloudevent.Event) error
}

// New builds the Sender of cfg's section (http or mqtt). cfg must be a
// validated configuration with its defaults, as the gateway's Compile
// passes it (or built from DefaultConfig, DefaultHTTPConfig and
// DefaultMQTTConfig and checked with Validate): New does not check it
// again. It starts no goroutines. log may be nil (discard); m may be nil
// (metrics are then kept in a private set).
//
// The returned Sender also implements io.Closer; Close releases idle
// connections and may be called when the uplink is removed.
func New(cfg Config, log *slog.Logger, m *metrics.Set) (Sender, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewSet()
	}
	switch {
	case cfg.HTTP != nil && cfg.MQTT == nil:
		return newHTTPSender(cfg, log, m)
	case cfg.MQTT != nil && cfg.HTTP == nil:
		return newMQTTSender(cfg, log, m)
	default:
		return nil, fmt.Errorf("uplink %q: set exactly one sender section, http or mqtt", cfg.Name)
	}
}

// The senders New builds; both also release their connections on Close.
var (
	_ Sender    = (*httpSender)(nil)
	_ Sender    = (*mqttSender)(nil)
	_ io.Closer = (*httpSender)(nil)
	_ io.Closer = (*mqttSender)(nil)
)
