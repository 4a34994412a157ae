// Package ceconform judges conformance to CloudEvents 1.0: a strict
// validator of the HTTP protocol binding (binary, structured and batched
// content modes) and of the JSON event format and JSON batch format, as
// specified by CloudEvents v1.0.2 (spec.md, bindings/http-protocol-binding.md,
// formats/json-format.md).
//
// internal/receiver (behind `edgegate sink` and `edgegate bench`) and the test
// receivers use it to check that what edgegate sends is spec-conformant, and
// to compare what arrived with what was sent (SameEvent). It parses requests
// itself, byte for byte, with no dependency on sdk-go, whose decoding is
// lenient: sdk-go v2.16.2 neither percent-encodes nor percent-decodes
// binary-mode header values and accepts many malformed events.
//
// Findings come in two kinds. Violations of a MUST (or MUST NOT) are errors:
// Validate returns them as a *Violations, one line per problem, each naming
// where it is and what is wrong, e.g.
//
//	batch[3]: time: "2026-13-01" is not RFC 3339: month 13 out of range
//	header ce-subject: not percent-encoded: space at byte 4
//
// Violations of a SHOULD (or SHOULD NOT) are warnings, returned separately,
// so a caller decides whether they fail it (edgegate's own tests do).
//
// ceconform imports only the standard library: it must not import any
// edgegate package or sdk-go, so it judges edgegate's encoder (and sdk-go)
// instead of sharing their mistakes. It has no state: every function is safe for concurrent use.
package ceconform
