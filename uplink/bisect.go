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

// span is a half-open range of record indices.
type span struct{ lo, hi int }

// bisect isolates the records of a batch that an endpoint refuses for good,
// so one poison event never dead-letters the events sent with it. It is pure
// bookkeeping (no I/O, no goroutines) and not safe for concurrent use.
//
// A batch request is all-or-nothing: a 2xx accepts every event, and any
// other answer (a 4xx, a 207 partial acceptance) says nothing about which
// events were at fault. bisect answers that by sending halves: a range that
// fails permanently is split in two until single records remain, which are
// then poison. A *RecordError (a malformed record, or the failing event in
// binary/structured mode) names the culprit directly and costs no split.
// Retryable failures leave the range as it is, to be sent again after a
// backoff. Finding p poison records among n costs about 2·p·log2(n) extra
// requests; ranges that succeeded may be delivered twice (same ids).
//
// Delivery.Deliver drives it: next, Send, result, and after a retryable
// failure a backoff before next returns the same range again.
type bisect struct {
	todo   []span // a stack: the last element is sent next
	poison []poison
	sent   span // range returned by the last next
	active bool
}

// newBisect starts the delivery of a batch of n records.
func newBisect(n int) *bisect {
	b := &bisect{}
	if n > 0 {
		b.todo = []span{{0, n}}
	}
	return b
}

// next returns the range records[lo:hi] to send next; ok is false when
// every record is either delivered or poison. Calling next again without
// result returns the same range.
func (b *bisect) next() (lo, hi int, ok bool) {
	if len(b.todo) == 0 {
		return 0, 0, false
	}
	b.sent, b.active = b.todo[len(b.todo)-1], true
	return b.sent.lo, b.sent.hi, true
}

// result records the outcome of sending the range next returned. It
// returns retry=true (and the server's RetryAfter) when err is retryable:
// the caller waits and sends the same range again. For nil and permanent
// errors it returns false and next moves on.
func (b *bisect) result(err error) (retry bool, retryAfter time.Duration) {
	if !b.active {
		return false, 0
	}
	if err == nil {
		b.pop()
		return false, 0
	}
	if retry, after := classify(err); retry {
		return true, after
	}
	s := b.sent
	b.pop()
	var re *RecordError
	if errors.As(err, &re) && re.Index >= 0 && re.Index < s.hi-s.lo {
		bad := s.lo + re.Index
		b.poison = append(b.poison, poison{index: bad, err: err})
		// The rest of the range goes again, left part first.
		b.push(span{bad + 1, s.hi})
		b.push(span{s.lo, bad})
		return false, 0
	}
	if s.hi-s.lo == 1 {
		b.poison = append(b.poison, poison{index: s.lo, err: err})
		return false, 0
	}
	mid := s.lo + (s.hi-s.lo)/2
	b.push(span{mid, s.hi})
	b.push(span{s.lo, mid})
	return false, 0
}

// giveUp ends the range next returned without delivering it: each of its
// records becomes poison with err (retry.max_attempts).
func (b *bisect) giveUp(err error) {
	if !b.active {
		return
	}
	s := b.sent
	b.pop()
	for i := s.lo; i < s.hi; i++ {
		b.poison = append(b.poison, poison{index: i, err: err})
	}
}

// poisoned returns the poison records found so far, in the order found.
func (b *bisect) poisoned() []poison { return b.poison }

func (b *bisect) pop() {
	b.todo = b.todo[:len(b.todo)-1]
	b.active = false
}

func (b *bisect) push(s span) {
	if s.hi > s.lo {
		b.todo = append(b.todo, s)
	}
}
