// Package receiver owns receiving CloudEvents over HTTP for edgegate's tools
// and tests: it reads a request in any content mode of the HTTP binding
// (binary, structured, batch; gzip bodies too), checks it strictly against
// CloudEvents 1.0 with internal/ceconform, reports the violations, refuses
// an invalid request with 400 and the reasons (unless lenient), and hands
// what it accepted to its caller. `edgegate sink`, edgegate bench's receiver and
// the shared test receiver (internal/cetest) are built on its Handler.
//
// It decodes with sdk-go only on request (Request.Decode), after
// percent-decoding the binary-mode headers, which sdk-go does not do.
//
// receiver imports internal/ceconform and must not import any other
// edgegate package; the gateway does not import it (it is not on the event
// path). A Handler is
// safe for concurrent use once built; its hooks run concurrently, one call
// per request.
package receiver
