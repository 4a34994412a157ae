package uplink

import (
	"errors"
	"time"
)

// Poison is a record that an endpoint refused permanently, found by Bisect.
type Poison struct {
	// Index is the record's index in the batch given to NewBisect.
	Index int
	// Err is the permanent error the record alone (or as the named record
	// of a *RecordError) produced.
	Err error
}

// span is a half-open range of record indices.
type span struct{ lo, hi int }

// Bisect isolates the records of a batch that an endpoint refuses for good,
// so one poison event never dead-letters the events sent with it. It is pure
// bookkeeping (no I/O, no goroutines) and not safe for concurrent use.
//
// A batch request is all-or-nothing: a 2xx accepts every event, and any
// other answer (a 4xx, a 207 partial acceptance) says nothing about which
// events were at fault. Bisect answers that by sending halves: a range that
// fails permanently is split in two until single records remain, which are
// then poison. A *RecordError (a malformed record, or the failing event in
// binary/structured mode) names the culprit directly and costs no split.
// Retryable failures leave the range as it is, to be sent again after a
// backoff. Finding p poison records among n costs about 2·p·log2(n) extra
// requests; ranges that succeeded may be delivered twice (same ids).
//
// The forward loop drives it:
//
//	b := uplink.NewBisect(len(records))
//	for lo, hi, ok := b.Next(); ok; lo, hi, ok = b.Next() {
//		err := sender.Send(ctx, records[lo:hi])
//		if retry, after := b.Result(err); retry {
//			sleep(max(backoff.Next(), after)) // same range next time
//			continue
//		}
//		backoff.Reset()
//	}
//	for _, p := range b.Poisoned() { deadLetter(records[p.Index], p.Err) }
//	batch.Ack()
type Bisect struct {
	todo   []span // a stack: the last element is sent next
	poison []Poison
	sent   span // range returned by the last Next
	active bool
}

// NewBisect starts the delivery of a batch of n records.
func NewBisect(n int) *Bisect {
	b := &Bisect{}
	if n > 0 {
		b.todo = []span{{0, n}}
	}
	return b
}

// Next returns the range records[lo:hi] to send next; ok is false when
// every record is either delivered or poison. Calling Next again without
// Result returns the same range.
func (b *Bisect) Next() (lo, hi int, ok bool) {
	if len(b.todo) == 0 {
		return 0, 0, false
	}
	b.sent, b.active = b.todo[len(b.todo)-1], true
	return b.sent.lo, b.sent.hi, true
}

// Result records the outcome of sending the range Next returned. It
// returns retry=true (and the server's RetryAfter) when err is retryable:
// the caller waits and sends the same range again. For nil and permanent
// errors it returns false and Next moves on.
func (b *Bisect) Result(err error) (retry bool, retryAfter time.Duration) {
	if !b.active {
		return false, 0
	}
	if err == nil {
		b.pop()
		return false, 0
	}
	if retry, after := Classify(err); retry {
		return true, after
	}
	s := b.sent
	b.pop()
	var re *RecordError
	if errors.As(err, &re) && re.Index >= 0 && re.Index < s.hi-s.lo {
		bad := s.lo + re.Index
		b.poison = append(b.poison, Poison{Index: bad, Err: err})
		// The rest of the range goes again, left part first.
		b.push(span{bad + 1, s.hi})
		b.push(span{s.lo, bad})
		return false, 0
	}
	if s.hi-s.lo == 1 {
		b.poison = append(b.poison, Poison{Index: s.lo, Err: err})
		return false, 0
	}
	mid := s.lo + (s.hi-s.lo)/2
	b.push(span{mid, s.hi})
	b.push(span{s.lo, mid})
	return false, 0
}

// GiveUp ends the range Next returned without delivering it: each of its
// records becomes poison with err (the forward loop's retry limit).
func (b *Bisect) GiveUp(err error) {
	if !b.active {
		return
	}
	s := b.sent
	b.pop()
	for i := s.lo; i < s.hi; i++ {
		b.poison = append(b.poison, Poison{Index: i, Err: err})
	}
}

// Poisoned returns the poison records found so far, in the order found.
func (b *Bisect) Poisoned() []Poison { return b.poison }

func (b *Bisect) pop() {
	b.todo = b.todo[:len(b.todo)-1]
	b.active = false
}

func (b *Bisect) push(s span) {
	if s.hi > s.lo {
		b.todo = append(b.todo, s)
	}
}
