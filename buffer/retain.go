package buffer

import "github.com/dgraph-io/badger/v4"

// retainedPrefix starts the name of every history queue.
const retainedPrefix = "retained."

// RetainedName is the name of the history of queue name: with
// Config.Retain, Ack moves delivered records there instead of deleting
// them. A history is a queue like the others for Stats, List, Get and
// Delete; nothing consumes it, and Queue refuses its name.
func RetainedName(name string) string { return retainedPrefix + name }

// IsRetained reports whether queue name is a history (RetainedName), and
// of which queue.
func IsRetained(name string) (of string, ok bool) {
	if len(name) <= len(retainedPrefix) || name[:len(retainedPrefix)] != retainedPrefix {
		return "", false
	}
	return name[len(retainedPrefix):], true
}

// history is what one Ack moves into a queue's history: records with new
// seqs of the history queue, their append time kept (so retain and
// --since count from when an event was stored, not delivered).
type history struct {
	b      *Buffer
	q      *Queue // the history queue
	keys   [][]byte
	vals   [][]byte
	bytes  int64
	maxSeq uint64
}

// historyFor returns an empty history for q's acked records, creating q's
// history queue on first use; nil when nothing is retained (retain is off,
// or q is a history itself). The caller holds closeMu for reading, the
// buffer open.
func (b *Buffer) historyFor(q *Queue) (*history, error) {
	if b.cfg.Retain <= 0 || q.retained || b.readOnly {
		return nil, nil
	}
	name := RetainedName(q.name)
	b.qmu.RLock()
	hq := b.queues[name]
	b.qmu.RUnlock()
	if hq == nil {
		var err error
		if hq, err = b.createQueue(name); err != nil {
			return nil, err
		}
	}
	return &history{b: b, q: hq}, nil
}

// addLocked adds one acked record, appended at t (Unix nanoseconds), to
// the history. The caller holds b.mu.
func (h *history) addLocked(t int64, data []byte) {
	seq := h.q.tail
	h.q.tail++
	h.keys = append(h.keys, recKey(make([]byte, 0, recKeyLen), h.q.id, seq))
	h.vals = append(h.vals, appendVal(make([]byte, 0, valHeadSize+len(data)), t, nil, data))
	h.bytes += int64(len(data))
	h.maxSeq = seq
}

// write adds the history's records to w (before the acked records'
// deletes, so that a crash between two transactions can duplicate a
// record but never lose it). A nil history writes nothing.
func (h *history) write(w *txnWriter) error {
	if h == nil {
		return nil
	}
	for i, k := range h.keys {
		v := h.vals[i]
		if err := w.do(func(txn *badger.Txn) error { return txn.SetEntry(badger.NewEntry(k, v)) }); err != nil {
			return err
		}
	}
	return nil
}

// committedLocked accounts for the history's records once they are
// committed. The caller holds b.mu.
func (h *history) committedLocked() {
	if h == nil || len(h.keys) == 0 {
		return
	}
	n := int64(len(h.keys))
	q, b := h.q, h.b
	q.records += n
	q.bytes += h.bytes
	b.records += n
	b.bytes += h.bytes
	q.committed = max(q.committed, h.maxSeq+1)
	q.updateGauges()
	b.updateGaugesLocked()
}

// selectRetainedLocked chooses the oldest retained records until at least
// need bytes are freed (or no history is left), like selectOldestLocked.
func (b *Buffer) selectRetainedLocked(need int64) [][]byte {
	keys, _, err := b.pickOldestLocked(need, true)
	if err != nil {
		b.log.Error("select retained records to remove", "err", err)
	}
	b.afterDropLocked(0, len(keys), reasonOverflow)
	return keys
}

// retainedBytesLocked is what the histories hold. The caller holds b.mu.
func (b *Buffer) retainedBytesLocked() int64 {
	var n int64
	for _, q := range b.qlist {
		if q.retained {
			n += q.bytes
		}
	}
	return n
}
