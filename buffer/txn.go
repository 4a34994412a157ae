package buffer

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// txnWriter writes into as many transactions as needed (Badger limits one to
// 15% of a memtable), applying accounting after each successful commit.
type txnWriter struct {
	b      *Buffer
	txn    *badger.Txn
	deltas map[*Queue]*delta
	done   []*appendReq // requests whose last record is in txn
	err    error
}

type delta struct {
	records, bytes int64
	maxSeq         uint64
	recent         []recentRec // the records, for Next (recent.go)
}

func (b *Buffer) newTxnWriter() *txnWriter {
	return &txnWriter{b: b, deltas: make(map[*Queue]*delta)}
}

// do runs op on the current transaction, committing it and retrying on a new
// one if it is full.
func (w *txnWriter) do(op func(*badger.Txn) error) error {
	if w.err != nil {
		return w.err
	}
	if w.txn == nil {
		w.txn = w.b.db.NewTransaction(true)
	}
	err := op(w.txn)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if w.commit(); w.err != nil {
			return w.err
		}
		w.txn = w.b.db.NewTransaction(true)
		err = op(w.txn)
	}
	if err != nil {
		w.txn.Discard()
		w.txn = nil
		w.err = err
		w.b.writeFailed.Store(true)
	}
	return err
}

func (w *txnWriter) delete(key []byte) error {
	return w.do(func(txn *badger.Txn) error { return txn.Delete(key) })
}

func (w *txnWriter) set(q *Queue, seq uint64, key, val []byte) error {
	if err := w.do(func(txn *badger.Txn) error { return txn.SetEntry(badger.NewEntry(key, val)) }); err != nil {
		return err
	}
	d := w.deltas[q]
	if d == nil {
		d = &delta{}
		w.deltas[q] = d
	}
	d.records++
	d.bytes += int64(len(val) - valHeadSize)
	d.maxSeq = seq
	d.recent = append(d.recent, recentRec{seq: seq, val: val})
	return nil
}

// commit commits the current transaction, unless an error happened.
func (w *txnWriter) commit() {
	if w.err != nil || w.txn == nil {
		return
	}
	err := w.txn.Commit()
	w.txn = nil
	if err != nil {
		w.err = err
		// Blocked writes are retried (deleteKeysAfter); anything else
		// may leave the accounting apart from the store.
		if !errors.Is(err, badger.ErrBlockedWrites) {
			w.b.writeFailed.Store(true)
		}
		return
	}
	b := w.b
	// Index the marks before the records become visible to Next: an ack
	// saves the marks indexed so far (see ackDelete).
	for _, r := range w.done {
		b.marks.remember(r.marks)
	}
	if len(w.deltas) > 0 {
		var n int64
		b.mu.Lock()
		for q, d := range w.deltas {
			q.records += d.records
			q.bytes += d.bytes
			b.records += d.records
			b.bytes += d.bytes
			n += d.records
			if d.maxSeq >= q.committed {
				q.committed = d.maxSeq + 1
			}
			q.addRecentLocked(d.recent)
			q.updateGauges()
			q.wakeLocked()
		}
		b.updateGaugesLocked()
		b.mu.Unlock()
		b.m.appended.Add(int(n))
		clear(w.deltas)
	}
	for _, r := range w.done {
		r.finish(nil)
	}
	w.done = w.done[:0]
}

// deleteKeys deletes keys in as few synced transactions as possible.
func (b *Buffer) deleteKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	return b.deleteKeysAfter(nil, keys)
}

// deleteKeysAfter deletes keys in the transaction(s) that first run pre
// (nil: nothing), so pre's writes are committed no later than the deletes.
func (b *Buffer) deleteKeysAfter(pre func(*txnWriter) error, keys [][]byte) error {
	var err error
	// Writes are blocked for a moment while reclaim forces a compaction.
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		w := b.newTxnWriter()
		if pre != nil {
			_ = pre(w) // an error is kept in w.err
		}
		for _, k := range keys {
			if w.delete(k) != nil {
				break
			}
		}
		w.commit()
		if err = w.err; !errors.Is(err, badger.ErrBlockedWrites) || wait > 2*time.Second {
			return err
		}
		time.Sleep(wait)
	}
}
