package uplink

import (
	"errors"
	"math"
	"unicode/utf8"

	"github.com/edgegate/edgegate/cloudevent"
)

// Extension attributes Delivery sets on records it replays or
// dead-letters; cloudevent owns the names.
const (
	ExtReplayed  = cloudevent.ExtReplayed
	ExtError     = cloudevent.ExtError
	ExtErrorCode = cloudevent.ExtErrorCode
	ExtErrorDest = cloudevent.ExtErrorDest
	ExtAttempts  = cloudevent.ExtAttempts
)

// maxErrorExt bounds the error text put into ExtError.
const maxErrorExt = 512

// The two places Delivery changes an event: markFailed, and the Replayed
// flag (see Delivery.markReplayed), which the senders' encoders write.
// ForReplay undoes markFailed for a replay on demand.

// markFailed sets on e the extension attributes a dead-lettered event
// carries: ExtError, ExtErrorCode (when the failure had an HTTP status),
// ExtErrorDest and ExtAttempts. An event that was sent as replayed keeps
// replayed=true as a stored extension, as it was sent.
func markFailed(e *cloudevent.Event, err error, attempts int, uplinkName string) {
	if e.Replayed {
		e.SetExtension(ExtReplayed, cloudevent.Bool(true))
	}
	if err != nil {
		msg := err.Error()
		if len(msg) > maxErrorExt {
			msg = msg[:maxErrorExt]
			for !utf8.ValidString(msg) {
				msg = msg[:len(msg)-1]
			}
			msg += "…"
		}
		e.SetExtension(ExtError, cloudevent.String(cloudevent.SanitizeString(msg)))
		var ue *Error
		if errors.As(err, &ue) && ue.StatusCode != 0 {
			e.SetExtension(ExtErrorCode, cloudevent.Integer(int32(min(max(ue.StatusCode, math.MinInt32), math.MaxInt32))))
		}
	}
	e.SetExtension(ExtErrorDest, cloudevent.String(uplinkName))
	e.SetExtension(ExtAttempts, cloudevent.Integer(int32(min(attempts, math.MaxInt32))))
}

// ForReplay readies a dead-lettered or already delivered event to be sent
// again on demand (`edgegate buffer replay`): it removes the failure
// extensions markFailed set, so that a new failure is recorded cleanly,
// and stores replayed=true, which the senders write as it is (the event is
// appended afresh, so Delivery would not mark it).
func ForReplay(e *cloudevent.Event) {
	for _, name := range []string{ExtError, ExtErrorCode, ExtErrorDest, ExtAttempts} {
		e.DeleteExtension(name)
	}
	e.SetExtension(ExtReplayed, cloudevent.Bool(true))
}
