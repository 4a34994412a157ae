package buffer

import (
	"fmt"
	"slices"
	"time"
)

// Batch is a set of records leased by Next. Exactly one of Ack or Nack should
// be called; later calls do nothing.
type Batch struct {
	q     *Queue
	seqs  []uint64
	times []int64 // append time, Unix nanoseconds
	sizes []int64 // accounted size of each record
	data  [][]byte
	done  bool // guarded by q.b.mu
}

// Records returns the records' data, oldest first. The slices belong to the
// caller.
func (bt *Batch) Records() [][]byte { return bt.data }

// AppendedAt returns when record i was appended to the buffer.
func (bt *Batch) AppendedAt(i int) time.Time { return time.Unix(0, bt.times[i]) }

// Ack deletes the records. The delete is committed to disk but a crash may
// still redeliver acked records (at-least-once). Records dropped or expired
// while leased are not counted twice.
func (bt *Batch) Ack() error {
	q := bt.q
	b := q.b
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	b.mu.Lock()
	if bt.done {
		b.mu.Unlock()
		return nil
	}
	bt.done = true
	keys := make([][]byte, 0, len(bt.seqs))
	slab := make([]byte, 0, len(bt.seqs)*recKeyLen)
	for _, seq := range bt.seqs {
		n, ok := q.leased[seq]
		if !ok {
			continue // dropped or expired meanwhile
		}
		delete(q.leased, seq)
		q.deleting[seq] = struct{}{}
		q.subtractLocked(n)
		off := len(slab)
		slab = recKey(slab, q.id, seq)
		keys = append(keys, slab[off:])
	}
	q.updateGauges()
	b.updateGaugesLocked()
	b.overflowEpisodeLocked(0, 0, 0) // acks may end a full episode
	b.mu.Unlock()
	b.m.acked.Add(len(keys))

	err := b.ackDelete(keys)

	b.mu.Lock()
	for _, seq := range bt.seqs {
		delete(q.deleting, seq)
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("ack %d records of queue %q: %w", len(keys), q.name, err)
	}
	return nil
}

// Nack hands the records back: Next returns them again, before newer ones
// and in their original order.
func (bt *Batch) Nack() {
	q := bt.q
	b := q.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if bt.done {
		return
	}
	bt.done = true
	back := make([]uint64, 0, len(bt.seqs))
	for _, seq := range bt.seqs {
		if _, ok := q.leased[seq]; ok {
			delete(q.leased, seq)
			back = append(back, seq)
		}
	}
	if len(back) == 0 {
		return
	}
	q.nacked = append(q.nacked, back...)
	slices.Sort(q.nacked)
	q.nacked = slices.Compact(q.nacked)
	q.wakeLocked()
}
