package buffer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/badger/v4"
)

// Queue is one named queue (one per uplink) of a Buffer. Next hands out
// records oldest first; one consumer per queue is expected, but several
// batches may be leased at once.
type Queue struct {
	b    *Buffer
	name string
	id   uint16

	gRecords, gBytes *metrics.Gauge

	// Guarded by b.mu.
	tail      uint64              // next seq to assign
	committed uint64              // every committed seq is below it
	cursor    uint64              // Next reads the store from here
	floor     uint64              // seqs below were dropped or expired
	leased    map[uint64]int64    // seq -> data size, handed out by Next
	deleting  map[uint64]struct{} // acked, delete not yet committed
	nacked    []uint64            // sorted, below cursor, to hand out again first
	records   int64
	bytes     int64
	wake      chan struct{} // closed when records may have become available
}

func newQueue(b *Buffer, name string, id uint16) *Queue {
	label := promQuote(name)
	return &Queue{
		b:        b,
		name:     name,
		id:       id,
		gRecords: b.m.set.GetOrCreateGauge(`edgegate_buffer_queue_records{queue=`+label+`}`, nil),
		gBytes:   b.m.set.GetOrCreateGauge(`edgegate_buffer_queue_bytes{queue=`+label+`}`, nil),
		tail:     1,
		leased:   make(map[uint64]int64),
		deleting: make(map[uint64]struct{}),
	}
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

func (q *Queue) updateGauges() {
	q.gRecords.Set(float64(q.records))
	q.gBytes.Set(float64(q.bytes))
}

func (q *Queue) wakeLocked() {
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
}

// seekStartLocked returns a seq at or below the oldest record still stored
// and not being deleted: records below the cursor are leased, nacked, acked
// or dropped.
func (q *Queue) seekStartLocked() uint64 {
	s := q.cursor
	for seq := range q.leased {
		s = min(s, seq)
	}
	for seq := range q.deleting {
		s = min(s, seq)
	}
	if len(q.nacked) > 0 {
		s = min(s, q.nacked[0])
	}
	return max(s, q.floor)
}

// subtractLocked removes one stored record of n bytes from the accounting.
func (q *Queue) subtractLocked(n int64) {
	q.records--
	q.bytes -= n
	q.b.records--
	q.b.bytes -= n
}

// Next blocks until at least one unleased record exists (or ctx ends, or the
// buffer is closed) and leases up to maxRecords records totalling at most
// maxBytes (maxBytes <= 0: no byte limit), oldest first. It always returns at
// least one record, even one larger than maxBytes. Records handed back with
// Nack come before newer ones.
func (q *Queue) Next(ctx context.Context, maxRecords, maxBytes int) (*Batch, error) {
	maxRecords = max(maxRecords, 1)
	b := q.b
	for {
		b.closeMu.RLock()
		if b.closed {
			b.closeMu.RUnlock()
			return nil, ErrClosed
		}
		b.mu.Lock()
		batch, err := q.collectLocked(maxRecords, maxBytes)
		var wake chan struct{}
		if batch == nil && err == nil {
			if q.wake == nil {
				q.wake = make(chan struct{})
			}
			wake = q.wake
		}
		b.mu.Unlock()
		b.closeMu.RUnlock()
		if batch != nil || err != nil {
			return batch, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.closedCh:
			return nil, ErrClosed
		}
	}
}

func (q *Queue) collectLocked(maxRecords, maxBytes int) (*Batch, error) {
	i := 0
	for i < len(q.nacked) && q.nacked[i] < q.floor {
		i++
	}
	q.nacked = q.nacked[i:]
	q.cursor = max(q.cursor, q.floor)
	if len(q.nacked) == 0 && q.cursor >= q.committed {
		return nil, nil
	}

	txn := q.b.db.NewTransaction(false)
	defer txn.Discard()
	bt := &Batch{q: q}
	size := 0
	full := func(n int) bool {
		return len(bt.seqs) >= maxRecords || (maxBytes > 0 && len(bt.seqs) > 0 && size+n > maxBytes)
	}
	take := func(seq uint64, v []byte) {
		t, _, data, ok := splitVal(v)
		if !ok {
			return
		}
		bt.seqs = append(bt.seqs, seq)
		bt.times = append(bt.times, t)
		bt.data = append(bt.data, data)
		bt.sizes = append(bt.sizes, int64(len(v)-valHeadSize))
		size += len(v) - valHeadSize
	}

	// Handed-back records first, oldest first.
	key := make([]byte, 0, recKeyLen)
	i = 0
	for ; i < len(q.nacked); i++ {
		seq := q.nacked[i]
		item, err := txn.Get(recKey(key[:0], q.id, seq))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read queue %q: %w", q.name, err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, fmt.Errorf("read queue %q: %w", q.name, err)
		}
		if len(v) < valHeadSize {
			continue
		}
		if full(len(v) - valHeadSize) {
			break
		}
		take(seq, v)
	}
	q.nacked = q.nacked[i:]

	// Then records never handed out, from the cursor.
	if len(q.nacked) == 0 && q.cursor < q.committed && !full(0) {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(q.id)})
		for it.Seek(recKey(key[:0], q.id, q.cursor)); it.Valid(); it.Next() {
			item := it.Item()
			_, seq, ok := parseRecKey(item.Key())
			if !ok {
				continue
			}
			if full(int(item.ValueSize()) - valHeadSize) {
				// ValueSize is exact for values kept in the LSM tree and
				// close for larger ones: good enough for a batch limit.
				break
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("read queue %q: %w", q.name, err)
			}
			q.cursor = seq + 1
			if len(v) < valHeadSize {
				continue
			}
			take(seq, v)
		}
		it.Close()
	}
	if len(bt.seqs) == 0 {
		return nil, nil
	}
	for k, seq := range bt.seqs {
		q.leased[seq] = bt.sizes[k]
	}
	return bt, nil
}

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
