// Package uplink sends CloudEvents to cloud endpoints: one Sender per kind
// of endpoint, built by New from a Config whose sender section (http
// or mqtt) names the kind.
//
// # Configuration
//
// A Config is one entry of the gateway's uplinks list: a name, exactly one
// sender section with the sender's own settings (HTTPConfig, MQTTConfig),
// and the delivery settings beside it (DeliveryConfig: batch, retry,
// replay, dead_letter). Defaults are set before decoding (SetDefaults, for
// internal/yamlconf), so a key the file leaves out keeps its default and an
// explicit 0 stays 0. Validate checks an entry section by section, each
// problem a *yamlconf.Error with its path; ValidateList adds what only the
// list knows (unique names, dead_letter targets). New trusts a validated
// config. A key of the old flat layout (url, mode, auth… beside name) is
// refused with where it moved (MovedKey, a yamlconf.KeyMover).
//
// A Sender takes events as cloudevent records, decoded once from the buffer
// by the caller, and writes each straight from the record: the JSON format
// with cloudevent.AppendJSON, binary-mode headers field by field. Nothing
// is re-parsed. An event's Replayed flag is written as replayed=true.
//
// # HTTP (section http)
//
// The http sender POSTs events in one of three modes:
//
//   - batch (default): one request per slice, body the JSON array of the
//     events (application/cloudevents-batch+json), split by
//     Batch.MaxBytes.
//   - binary: one request per event in the HTTP binary binding (ce-*
//     headers, percent-encoded, body = data, Content-Type =
//     datacontenttype), as Knative broker ingress expects.
//   - structured: one request per event, body the event in the JSON format
//     (application/cloudevents+json).
//
// In binary and structured mode up to MaxInFlight requests run concurrently
// on keep-alive connections, but events with the same source are sent one
// after another in slice order, and after a failure no new request starts:
// a later event of a source is never delivered after an earlier one failed.
// lanes schedules them: a free worker takes the next event of the idle
// source with the most events left, so sources drain evenly and a Send
// ends after about max(events/MaxInFlight, busiest source) round trips.
// The binary-mode headers are written by hand (binaryHeaders), not by
// sdk-go: they are the per-event cost there, and the strict validator
// tests (internal/ceconform) hold them to the HTTP binding.
//
// Auth and transport: custom headers, a bearer token (inline or from a file),
// HTTP basic (password inline or from a file), TLS with a custom CA bundle,
// client certificates (mTLS), server name override, and the proxy from the
// environment (HTTPS_PROXY, NO_PROXY). Secret files and client certificates
// are re-read when their mtime changes, checked lazily at most every 5 s
// (token files at once after a 401). compression: gzip compresses request
// bodies (Content-Encoding: gzip).
//
// # Delivery
//
// Delivery is the delivery loop of one uplink, configured by
// DeliveryConfig (batch, retry, replay, dead_letter): Deliver sends one
// batch until every record is accepted or refused for good. It retries
// with exponential backoff and jitter, honouring Retry-After, gives up
// after retry.max_attempts when set, marks events that waited out a
// failure or a restart replayed=true (paced by replay.max_rate), and
// returns the refused events with the failure as extension attributes for
// the caller to dead-letter. The caller (the gateway's forwarder) reads a
// batch from its buffer, calls Deliver, dead-letters, and acks. Health
// reports what the loop has seen (idle, delivering or failing, the last
// success, the last error), for the gateway's /status.
//
// # Partial batches
//
// There is no standard way for a receiver to say which events of a batch it
// refused, so a batch request is all-or-nothing: a 2xx other than 207 means
// every event was accepted; any other status applies to the whole request. A
// 207 Multi-Status is a partial acceptance and fails permanently. Binary and
// structured mode know which event failed: the error carries a *RecordError,
// and Error.Accepted names the events that got their own 2xx, which are
// never sent again. Delivery bisects a batch that failed permanently until
// the poison events are isolated, so one bad event never dead-letters the
// good ones sent with it.
//
// # MQTT (section mqtt)
//
// The mqtt sender publishes each event with QoS 1 to a cloud broker (MQTT
// 3.1.1 via paho: tcp://, tls://, ws://, wss://) in the CloudEvents MQTT
// binding's structured mode: the payload is the JSON event. MQTT 3.1.1
// cannot carry a content type, so structured JSON is the only mode. The topic
// comes from a template ({gateway_id}, {type}, {source}, {subject}, {id});
// '+', '#' and NUL in values become '_', '/' is kept. CleanSession is false
// with a session store (paho FileStore under StateDir, or memory), and paho
// reconnects on its own, resending the unacknowledged publishes in publish
// order. The client comes from internal/pahoclient, whose store wrapper
// keeps paho's resume from setting DUP on a packet that is being sent (a
// data race in paho v1.5.1). Send returns nil only when every event got
// its PUBACK on one unbroken connection; a connection loss during Send
// makes it fail (retryable), because paho completes the tokens of resent
// messages without a PUBACK. The client connects on the first Send and
// runs paho's goroutines until Close: the owner must Close the Sender.
//
// The mqtt sender is also a Subscriber: the gateway's MQTT config channel
// subscribes (QoS 1) over the uplink's own connection, which Subscribe
// opens without waiting for a Send, and publishes its answers there. Each
// topic is subscribed once per connection (a broker resends retained
// messages on every SUBSCRIBE) and again after a connection loss, since a
// broker may have lost the session.
//
// # Errors
//
// Failures are *Error values: Retryable (connection errors, timeouts, 408,
// 429, 5xx, and 401, 403, 404, 405, 407, which speak of credentials or the
// endpoint rather than the events) or permanent (other 4xx, 207, invalid
// events, which also carry a *RecordError naming the event). A failed Send
// may have delivered some events: the caller sends them again
// (at-least-once, duplicates keep their id).
//
// Metrics (on the *metrics.Set passed to New; HELP texts in MetricsHelp,
// beside the histograms' buckets in metrics.go):
// edgegate_uplink_requests_total{uplink,code} (http; code "error" when no
// response arrived), edgegate_uplink_events_sent_total{uplink},
// edgegate_uplink_request_duration_seconds{uplink} (a histogram with le
// buckets); mqtt: edgegate_uplink_mqtt_publishes_total, _send_failures_total,
// _connection_lost_total, _store_errors_total {uplink}; Delivery:
// edgegate_forward_events_delivered_total, _events_replayed_total,
// _send_failures_total, edgegate_uplink_up and the histogram
// edgegate_event_delivery_latency_seconds {uplink}.
//
// uplink must not import buffer, mqtt, rules or gateway: it never touches the
// disk buffer (Deliver reads a batch through the small Batch interface). Of
// edgegate's packages it imports only cloudevent, internal/yamlconf (config
// errors, ByteSize), internal/pahoclient and internal/metricname (its
// metric names), and not sdk-go.
//
// Senders are safe for concurrent use; a Delivery is driven by one
// goroutine. The http sender starts no goroutines outside Send; the mqtt
// sender's paho client runs from the first Send until Close. Header values,
// tokens, passwords and URL credentials are never logged or put into
// errors; Config.Redacted, String and LogValue give views without them.
package uplink
