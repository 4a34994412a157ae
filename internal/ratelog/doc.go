// Package ratelog owns rate-limited logging of a repeated event, such as an
// authentication failure or an access denial that a client or an attacker
// can repeat thousands of times a second: the first occurrence after a
// quiet interval is logged at once, the ones that follow within the
// interval are counted and summed up in one line when it ends, with the
// attributes of the last of them. A storm therefore costs one line per
// interval, and a single failure is never delayed; a metric beside it
// counts every occurrence.
//
// ratelog imports only the standard library: it must not import any
// edgegate package, so every package that logs such events may import it.
//
// Concurrency: a *Limiter is safe for concurrent use. Its lines are written
// under its mutex, from the caller's goroutine or from the interval's timer
// (time.AfterFunc, never more than one pending); Stop writes what is
// pending and stops the timer.
package ratelog
