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
	done  bool   // guarded by q.b.mu
	skip  []bool // records Forget kept out of the history; nil: none
}

// Records returns the records' data, oldest first. The slices belong to the
// caller.
func (bt *Batch) Records() [][]byte { return bt.data }

// AppendedAt returns when record i was appended to the buffer.
func (bt *Batch) AppendedAt(i int) time.Time { return time.Unix(0, bt.times[i]) }

// Forget keeps record i out of the retained history (Config.Retain) when
// the batch is acked: the caller did not deliver it (it dead-lettered it,
// say). Call it before Ack, from the goroutine that calls Ack.
func (bt *Batch) Forget(i int) {
	if bt.skip == nil {
		bt.skip = make([]bool, len(bt.seqs))
	}
	bt.skip[i] = true
}

// Ack deletes the records, or with Config.Retain moves them to their
// queue's history (but those given to Forget). The delete is committed to
// disk but a crash may still redeliver acked records (at-least-once).
// Records dropped, expired or deleted while leased are not counted twice.
func (bt *Batch) Ack() error {
	q := bt.q
	b := q.b
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	hist, err := b.historyFor(q)
	if err != nil {
		b.log.Warn("delivered records not retained", "queue", q.name, "err", err)
	}
	b.mu.Lock()
	if bt.done {
		b.mu.Unlock()
		return nil
	}
	bt.done = true
	keys := make([][]byte, 0, len(bt.seqs))
	seqs := make([]uint64, 0, len(bt.seqs))
	slab := make([]byte, 0, len(bt.seqs)*recKeyLen)
	for i, seq := range bt.seqs {
		n, ok := q.leased[seq]
		if !ok {
			continue // dropped, expired or deleted meanwhile
		}
		delete(q.leased, seq)
		q.deleting[seq] = struct{}{}
		q.subtractLocked(n)
		off := len(slab)
		slab = recKey(slab, q.id, seq)
		keys = append(keys, slab[off:])
		seqs = append(seqs, seq)
		if hist != nil && (bt.skip == nil || !bt.skip[i]) {
			hist.addLocked(bt.times[i], bt.data[i])
		}
	}
	q.updateGauges()
	b.updateGaugesLocked()
	b.overflowEpisodeLocked(0, 0, 0) // acks may end a full episode
	b.mu.Unlock()
	b.m.acked.Add(len(keys))

	err = b.commitAck(keys, hist)

	b.mu.Lock()
	for _, seq := range seqs {
		delete(q.deleting, seq)
	}
	if err == nil {
		hist.committedLocked()
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
