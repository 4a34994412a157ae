// Package uplink sends encoded CloudEvents to cloud endpoints: one Sender per
// kind of endpoint, built by New from a Config (a switch on Config.Type).
//
// A record is one CloudEvent in the CloudEvents JSON format, as
// json.Marshal(event.Event) produces it. The "http" sender POSTs records in
// one of three modes:
//
//   - batch (default): one request per slice, body the JSON array of the
//     records (application/cloudevents-batch+json), split by
//     Batch.MaxBytes. Records are concatenated, not re-encoded.
//   - binary: one request per event in the HTTP binary binding (ce-*
//     headers, body = data), as Knative broker ingress expects.
//   - structured: one request per event, body the record
//     (application/cloudevents+json).
//
// In binary and structured mode up to MaxInFlight requests run concurrently
// on keep-alive connections, but events with the same source are sent one
// after another in slice order, and after a failure no new request starts:
// a later event of a source is never delivered after an earlier one failed.
//
// Failures are *Error values: Retryable (connection errors, timeouts, 408,
// 429, 5xx) or permanent (other 4xx, malformed records, which also carry a
// *RecordError naming the record). Classify reads them; Backoff spaces the
// retries. A failed Send may have delivered some records: the caller sends
// the whole slice again (at-least-once, duplicates keep their id).
//
// Metrics (on the *metrics.Set passed to New):
// edgegate_uplink_requests_total{uplink,code} (code "error" when no
// response arrived), edgegate_uplink_events_sent_total{uplink},
// edgegate_uplink_request_duration_seconds{uplink}.
//
// uplink must not import buffer, mqtt, rules or gateway: it never touches the
// disk buffer. Senders are safe for concurrent use and start no goroutines
// outside Send. Header values (tokens) and URL credentials are never logged
// or put into errors.
package uplink
