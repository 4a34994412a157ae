package uplink

import (
	"errors"
	"time"
)

// poison is a record that an endpoint refused permanently, found by bisect.
type poison struct {
	// index is the record's index in the batch given to newBisect.
	index int
	// err is the permanent error the record alone (or as the named record
	// of a *RecordError) produced.
	err error
}

// bisect isolates the records of a batch that an endpoint refuses for good,
// so one poison event never dead-letters the events sent with it. It keeps
// the records still pending as lists of batch indices, in batch order. It
// is pure bookkeeping (no I/O, no goroutines) and not safe for concurrent
// use.
//
// A batch request is all-or-nothing: a 2xx accepts every event, and any
// other answer (a 4xx, a 207 partial acceptance) says nothing about which
// events were at fault. bisect answers that by sending halves: a range that
// fails permanently is split in two until single records remain, which are
// then poison; ranges that succeeded may then be delivered twice (same
// ids). Finding p poison records among n costs about 2·p·log2(n) extra
// requests.
//
// Binary and structured mode know more, and no split is needed: a
// *RecordError names the failing record, and *Error.Accepted the records
// that got their own 2xx, which are never sent again. Retryable failures
// leave the pending records as they are (less the accepted ones), to be
// sent again after a backoff.
//
// Delivery.Deliver drives it: next, Send, result, and after a retryable
// failure a backoff before next returns the same pending records again.
type bisect struct {
	todo   [][]int // a stack: the last element is sent next
	poison []poison
	sent   []int // records returned by the last next
	active bool
}

// newBisect starts the delivery of a batch of n records.
func newBisect(n int) *bisect {
	b := &bisect{}
	if n > 0 {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		b.todo = [][]int{all}
	}
	return b
}

// next returns the records (batch indices, ascending) to send next; ok is
// false when every record is either delivered or poison. Calling next
// again without result returns the same records.
func (b *bisect) next() (idx []int, ok bool) {
	if len(b.todo) == 0 {
		return nil, false
	}
	b.sent, b.active = b.todo[len(b.todo)-1], true
	return b.sent, true
}

// result records the outcome of sending the records next returned, and
// returns how many of them the endpoint accepted (all of them when err is
// nil). It returns retry=true (and the server's RetryAfter) when err is
// retryable: the caller waits and sends the records still pending again,
// and may giveUp on them. For nil and permanent errors it returns false
// and next moves on.
func (b *bisect) result(err error) (accepted int, retry bool, retryAfter time.Duration) {
	if !b.active {
		return 0, false, 0
	}
	s := b.sent
	b.pop()
	if err == nil {
		return len(s), false, 0
	}
	rest := s
	var ue *Error
	if errors.As(err, &ue) && len(ue.Accepted) > 0 {
		rest = without(s, ue.Accepted, -1)
	}
	accepted = len(s) - len(rest)
	if retry, after := classify(err); retry {
		if b.push(rest) {
			b.sent, b.active = rest, true // for giveUp
		}
		return accepted, true, after
	}
	var re *RecordError
	switch {
	case errors.As(err, &re) && re.Index >= 0 && re.Index < len(s):
		bad := s[re.Index]
		b.poison = append(b.poison, poison{index: bad, err: err})
		b.push(without(rest, nil, bad)) // the others go again, in order
	case len(rest) == 1:
		b.poison = append(b.poison, poison{index: rest[0], err: err})
	default:
		mid := len(rest) / 2
		b.push(rest[mid:])
		b.push(rest[:mid])
	}
	return accepted, false, 0
}

// giveUp ends the records next returned (less those result found
// accepted) without delivering them: each becomes poison with err
// (retry.max_attempts).
func (b *bisect) giveUp(err error) {
	if !b.active {
		return
	}
	s := b.sent
	b.pop()
	for _, i := range s {
		b.poison = append(b.poison, poison{index: i, err: err})
	}
}

// poisoned returns the poison records found so far, in the order found.
func (b *bisect) poisoned() []poison { return b.poison }

func (b *bisect) pop() {
	b.todo = b.todo[:len(b.todo)-1]
	b.active = false
}

// push adds pending records; it reports whether there were any.
func (b *bisect) push(idx []int) bool {
	if len(idx) == 0 {
		return false
	}
	b.todo = append(b.todo, idx)
	return true
}

// without returns a new list of the batch indices in s, less those at the
// positions pos of s and less the index drop (-1: none).
func without(s, pos []int, drop int) []int {
	skip := make(map[int]bool, len(pos))
	for _, p := range pos {
		skip[p] = true
	}
	out := make([]int, 0, len(s))
	for p, i := range s {
		if !skip[p] && i != drop {
			out = append(out, i)
		}
	}
	return out
}
