package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Opening must not read the backlog (issue 13: a gateway with 10 million
// events buffered listens within 2 s). Reading every record took about a
// second per million and mapped every table into memory. So Open reads
// only what does not grow with the backlog:
//
//   - each queue's oldest and newest key (one seek each way), which give
//     Next its cursor and Append its next seq;
//   - the resend marks of each queue's newest records (loadRecentMarks),
//     on top of the index saved by saveMarks;
//   - the records and bytes of each queue, from the counts that Close
//     saves after a clean stop (saveCounts). They are used only if nothing
//     was written since: the counts key must carry Badger's newest version.
//
// After a kill -9 or a crash there are no such counts, and the records are
// counted by reading them all, in a snapshot taken at Open, so appends and
// deletes made meanwhile are accounted as usual and the sum is exact: in
// Open (the default), or with WithLazyCount in Run, after the gateway has
// started listening. Until that count is done, Stats says Counting and its
// figures are partial (they grow as the count proceeds); max_bytes is
// enforced on what is counted so far, so the buffer may exceed it by what
// is appended meanwhile, and the disk guard does not lower the capacity
// or force a flatten (both need the true size) until the count is done.

// WithLazyCount defers counting the stored records after an unclean stop
// from Open to Run (see Stats.Counting).
func WithLazyCount() Option { return func(b *Buffer) { b.lazyCount = true } }

// recentMarksVisit bounds the records loadRecentMarks reads per queue.
const recentMarksVisit = 4 * maxMarks

// load reads the queue names, bounds and marks, and the counts saved at the
// last clean stop; without them it prepares (and unless lazy, runs) the
// count of every record.
func (b *Buffer) load() error {
	txn := b.db.NewTransaction(false)
	if err := b.loadQueues(txn); err != nil {
		txn.Discard()
		return err
	}
	for _, q := range b.qlist {
		if err := q.loadBounds(txn); err != nil {
			txn.Discard()
			return err
		}
		q.openTail = q.tail // seqs from here on are this process's
	}
	counted, err := b.loadCounts(txn)
	if err != nil {
		txn.Discard()
		return err
	}
	marks, err := b.loadRecentMarks(txn)
	if err != nil {
		txn.Discard()
		return err
	}
	b.marks.load(marks)
	for _, q := range b.qlist {
		q.updateGauges()
	}
	b.updateGaugesLocked()
	if counted {
		txn.Discard()
		return nil
	}
	// The snapshot txn is the count's: what was stored at Open.
	b.count = &recordCount{txn: txn}
	b.counting.Store(true)
	if b.lazyCount && !b.readOnly {
		return nil
	}
	return b.countRecords(context.Background())
}

// loadBounds sets the queue's cursor and floor to its oldest stored seq and
// its tail past its newest: one seek each way.
func (q *Queue) loadBounds(txn *badger.Txn) error {
	prefix := queuePrefix(q.id)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	it.Rewind()
	if !it.Valid() {
		it.Close()
		return nil
	}
	_, first, ok := parseRecKey(it.Item().Key())
	it.Close()
	rit := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
	defer rit.Close()
	rit.Seek(recKey(nil, q.id, math.MaxUint64))
	if !ok || !rit.Valid() {
		return fmt.Errorf("queue %q: malformed record key", q.name)
	}
	_, last, ok := parseRecKey(rit.Item().Key())
	if !ok || last < first {
		return fmt.Errorf("queue %q: malformed record key", q.name)
	}
	q.cursor, q.floor = first, first
	q.tail, q.committed = last+1, last+1
	return nil
}

// loadRecentMarks returns the marks of each queue's newest records: up to
// maxMarks marked records per queue, reading at most recentMarksVisit.
// The index keeps the newest maxMarks marks by append time, and within a
// queue seqs follow append times, so these include every mark the whole
// backlog would have given it.
func (b *Buffer) loadRecentMarks(txn *badger.Txn) ([]loadedMark, error) {
	var marks []loadedMark
	for _, q := range b.qlist {
		if q.committed == 0 {
			continue // empty
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(q.id), Reverse: true})
		found, visited := 0, 0
		for it.Seek(recKey(nil, q.id, math.MaxUint64)); it.Valid() && found < maxMarks && visited < recentMarksVisit; it.Next() {
			visited++
			if err := it.Item().Value(func(v []byte) error {
				if t, mark, _, ok := splitVal(v); ok && mark != nil {
					marks = append(marks, loadedMark{t: t, storedMark: *mark})
					found++
				}
				return nil
			}); err != nil {
				it.Close()
				return nil, fmt.Errorf("read queue %q: %w", q.name, err)
			}
		}
		it.Close()
	}
	return marks, nil
}

// recordCount is the count of the records stored at Open, after an unclean
// stop: it reads txn, a snapshot, and adds what it reads to the accounting
// as it goes.
type recordCount struct {
	txn  *badger.Txn
	once sync.Once
}

func (c *recordCount) discard() { c.once.Do(c.txn.Discard) }

// countChunk is how many records the count reads between two updates of
// the accounting.
const countChunk = 8192

// countRecords counts every record stored at Open (seq below its queue's
// openTail) into the accounting; deletes made meanwhile have already
// subtracted theirs, so the sum is exact once it is done. It stops early
// when ctx ends, leaving Counting set.
func (b *Buffer) countRecords(ctx context.Context) error {
	c := b.count
	if c == nil {
		return nil
	}
	defer c.discard()
	b.mu.Lock()
	byID := make(map[uint16]*Queue, len(b.qlist))
	for _, q := range b.qlist {
		byID[q.id] = q
	}
	b.mu.Unlock()
	type part struct{ records, bytes int64 }
	parts := make(map[*Queue]*part)
	flush := func() {
		b.mu.Lock()
		for q, p := range parts {
			q.records += p.records
			q.bytes += p.bytes
			b.records += p.records
			b.bytes += p.bytes
			q.updateGauges()
		}
		b.updateGaugesLocked()
		b.mu.Unlock()
		clear(parts)
	}
	it := c.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		id, seq, ok := parseRecKey(item.Key())
		q := byID[id]
		if !ok || q == nil || seq >= q.openTail {
			if !ok || q == nil {
				b.log.Warn("ignoring stray key in buffer", "key", fmt.Sprintf("%x", item.Key()))
			}
			continue
		}
		size, err := storedSize(item)
		if err != nil {
			flush()
			return fmt.Errorf("read record %d of queue %q: %w", seq, q.name, err)
		}
		p := parts[q]
		if p == nil {
			p = &part{}
			parts[q] = p
		}
		p.records++
		p.bytes += size
		if n++; n%countChunk == 0 {
			flush()
			if ctx.Err() != nil {
				return nil
			}
		}
	}
	flush()
	b.counting.Store(false)
	return nil
}

// storedSize is what a record counts for in the accounting: its value's
// length past the time field (as collector.take and txnWriter.set count
// it). ValueSize is exact for values kept in the LSM tree; the larger ones
// in the value log are read.
func storedSize(item *badger.Item) (int64, error) {
	n := item.ValueSize()
	if n >= valueThreshold-64 {
		if err := item.Value(func(v []byte) error { n = int64(len(v)); return nil }); err != nil {
			return 0, err
		}
	}
	return max(n-valHeadSize, 0), nil
}

// The counts saved at a clean stop: per queue, its id, records, bytes and
// tail, 26 bytes each, under metaCounts.
const countsEntry = 2 + 8 + 8 + 8

// saveCounts stores every queue's counts for the next Open, unless they
// are not known (a count still running) or may be wrong (a write failed
// in this process: its accounting may have changed without the store).
// Called by Close, when nothing else uses the database.
func (b *Buffer) saveCounts() error {
	if b.readOnly || b.counting.Load() || b.writeFailed.Load() {
		return nil
	}
	b.mu.Lock()
	data := make([]byte, 0, len(b.qlist)*countsEntry)
	for _, q := range b.qlist {
		data = binary.BigEndian.AppendUint16(data, q.id)
		data = binary.BigEndian.AppendUint64(data, uint64(q.records))
		data = binary.BigEndian.AppendUint64(data, uint64(q.bytes))
		data = binary.BigEndian.AppendUint64(data, q.tail)
	}
	b.mu.Unlock()
	return b.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte{prefixMeta, metaCounts}, data) })
}

// loadCounts applies the counts saved at the last clean stop, if they are
// still true: nothing was written after them (their version is Badger's
// newest) and every queue's tail matches. It reports whether it did.
func (b *Buffer) loadCounts(txn *badger.Txn) (bool, error) {
	item, err := txn.Get([]byte{prefixMeta, metaCounts})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if item.Version() != b.db.MaxVersion() {
		return false, nil // written since: count
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return false, err
	}
	if len(v) != len(b.qlist)*countsEntry {
		return false, nil
	}
	byID := make(map[uint16]*Queue, len(b.qlist))
	for _, q := range b.qlist {
		byID[q.id] = q
	}
	type saved struct {
		q              *Queue
		records, bytes int64
	}
	var all []saved
	for e := v; len(e) > 0; e = e[countsEntry:] {
		q := byID[binary.BigEndian.Uint16(e)]
		records, bytes := int64(binary.BigEndian.Uint64(e[2:])), int64(binary.BigEndian.Uint64(e[10:]))
		tail := binary.BigEndian.Uint64(e[18:])
		empty := q != nil && q.committed == 0 // loadBounds found no record
		if q == nil || records < 0 || bytes < 0 || (empty != (records == 0)) || (!empty && tail != q.tail) ||
			uint64(records) > q.tail-q.floor {
			b.log.Warn("ignoring saved buffer counts that do not match what is stored: counting the records")
			return false, nil
		}
		all = append(all, saved{q, records, bytes})
	}
	for _, s := range all {
		s.q.records, s.q.bytes = s.records, s.bytes
		b.records += s.records
		b.bytes += s.bytes
	}
	return true, nil
}
