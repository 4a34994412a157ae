package uplink

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error is the failure a Sender returns. Retryable tells the caller whether
// sending the same records again may succeed (connection errors, timeouts,
// 408, 429, 5xx) or not (other 4xx, malformed records). RetryAfter is the
// server's Retry-After hint (429 and 503), 0 when absent. StatusCode is the
// HTTP status of the failed response, 0 when there was none.
//
// Accepted lists the records (by index in the slice given to Send) that the
// endpoint accepted although the call failed: in binary and structured
// mode every event gets its own response, and one that got a 2xx must not
// be sent again. It is empty when no record is known to be accepted (a
// batch request is all-or-nothing).
type Error struct {
	Err        error
	Retryable  bool
	RetryAfter time.Duration
	StatusCode int
	Accepted   []int
}

// Error returns the message of the wrapped error.
func (e *Error) Error() string {
	if e.Err == nil {
		return "uplink error"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// RecordError names the record (by its index in the slice given to Send)
// that caused a failure. Senders wrap it inside *Error: a caller that finds
// one with errors.As and a non-retryable *Error can dead-letter that record
// and send the others again.
type RecordError struct {
	Index int
	Err   error
}

// Error returns "record <index>: <err>".
func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }

// Unwrap returns the wrapped error.
func (e *RecordError) Unwrap() error { return e.Err }

// classify tells Delivery what to do with an error from Send. nil
// yields (false, 0). An *Error anywhere in the chain yields its Retryable and
// RetryAfter. Everything else (context and network errors included) is
// treated as retryable: only failures we know to be permanent are dropped.
func classify(err error) (retryable bool, retryAfter time.Duration) {
	if err == nil {
		return false, 0
	}
	var ue *Error
	if errors.As(err, &ue) {
		return ue.Retryable, ue.RetryAfter
	}
	return true, 0
}

// maxRetryAfter caps a server's Retry-After hint.
const maxRetryAfter = time.Hour

// retryableStatus reports whether a response status is worth retrying:
// 408, 429 and 5xx, and the 4xx that speak of the endpoint or the
// gateway's credentials rather than of the events (401, 403, 404, 405, 407):
// a token being rotated or a receiver not deployed yet must not dead-letter
// every buffered event. Other 4xx (and 207, a partial acceptance) are
// permanent: Delivery bisects the batch (see bisect).
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusProxyAuthRequired:
		return true
	}
	return code >= 500
}

// parseRetryAfter parses a Retry-After value (delay-seconds or HTTP-date)
// relative to now. It returns 0 for an absent or malformed value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// snippetLen is how much of a response body goes into an error message.
const snippetLen = 200

// snippet returns a single-line, printable, truncated form of b.
func snippet(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	truncated := false
	if len(b) > snippetLen {
		b = b[:snippetLen]
		truncated = true
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			if len(b) == 0 && truncated {
				break // a rune cut by the truncation
			}
			sb.WriteRune('?')
		case r == '\n' || r == '\r' || r == '\t':
			sb.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			sb.WriteRune('?')
		default:
			sb.WriteRune(r)
		}
	}
	s := strings.TrimSpace(sb.String())
	if truncated {
		s += "…"
	}
	return s
}
