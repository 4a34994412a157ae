// Package tail owns the live tail of the events the gateway stores: a
// bounded ring of the most recent buffer appends, and the Server-Sent
// Events stream (text/event-stream) that the status page and `curl -N`
// read it from, with a filter and a rate limit.
//
// The ring holds the last Size appends (each one device message's records
// as the gateway appended them: the event per route, the events rules
// emitted, dead letters), at most MaxBytes of their data, by reference,
// without copying or decoding them: Add costs a mutex and a slot on the
// ingest path, whether anyone watches or not. Streams decode what they send. A stream reads the ring at most
// every Interval and sends at most Burst events per read, so what it costs
// is bounded by its reads, not by the ingest rate: events it could not
// send, or that the ring let go before it read them, are counted and
// reported in a "skipped" message, never queued.
//
// tail imports cloudevent (to decode and write the events) and buffer (for
// its Record type) and no other edgegate package; it must not import
// gateway.
//
// Concurrency: Add and Serve are safe for concurrent use. Serve runs on
// the request's goroutine until the client goes away, the server's context
// given to Handler ends, or a write fails; it starts no goroutines.
package tail
