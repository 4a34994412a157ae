package buffer

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// maxMarks bounds the marks indexed in memory (24 B each, no pointers for
// the garbage collector to scan). Marks serve to recognise the resend of a
// message whose ack was lost; only messages in flight at that moment are
// resent, so the most recent 16k across all devices are plenty.
const maxMarks = 16384

// markSize is what a mark adds to a record value.
const markSize = 16

// Mark is a small key/value stored with a record (Append's marks[i] with
// recs[i]). The gateway marks each stored device message with its client
// and packet id (Key) and a hash of its content (Value), to recognise a
// device's resend of a message that was stored but whose acknowledgement
// was lost (in a crash, or a dropped connection). The most recent marks are
// indexed in memory, also after their record is acked; the index is saved
// every markSaveEvery and when Run returns, and rebuilt at open from that
// and the records still stored. A new mark with the same key replaces the
// old. Keys are kept as a 64-bit FNV-1a hash.
//
// Marks live inside record values, not under keys of their own: extra keys
// interleaved with the sequential record keys made Badger compact tables
// over and over (measured: append throughput fell from 104k to 66k/s).
type Mark struct {
	Key   []byte
	Value uint64
}

// Mark returns the value of the mark key and whether there is one. It
// reads memory only.
func (b *Buffer) Mark(key []byte) (uint64, bool) {
	return b.marks.get(markHash(key))
}

func markHash(key []byte) uint64 {
	h := fnv.New64a()
	h.Write(key)
	return h.Sum64()
}

// storedMark is a mark as kept: the key's hash and the value.
type storedMark struct{ key, val uint64 }

// markIndex holds the most recent max marks: a map, and a ring in insertion
// order that evicts the oldest.
type markIndex struct {
	mu    sync.Mutex
	max   int
	seq   uint64
	saved uint64 // seq at the last save
	index map[uint64]markEntry
	ring  []uint64 // ring[seq%max] = key hash of the mark inserted as seq
}

type markEntry struct{ val, seq uint64 }

func newMarkIndex(max int) *markIndex {
	return &markIndex{max: max, index: make(map[uint64]markEntry), ring: make([]uint64, max)}
}

func (x *markIndex) get(key uint64) (uint64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.index[key]
	return e.val, ok
}

// remember indexes the marks of a committed append.
func (x *markIndex) remember(marks []Mark) {
	if len(marks) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range marks {
		x.insertLocked(markHash(m.Key), m.Value)
	}
}

func (x *markIndex) insertLocked(key, val uint64) {
	seq := x.seq
	x.seq++
	slot := seq % uint64(x.max)
	if seq >= uint64(x.max) {
		old := x.ring[slot]
		if e, ok := x.index[old]; ok && e.seq+uint64(x.max) <= seq {
			delete(x.index, old)
		}
	}
	x.ring[slot] = key
	x.index[key] = markEntry{val: val, seq: seq}
}

// loadedMark is a mark read from a stored record at open.
type loadedMark struct {
	t int64 // the record's append time
	storedMark
}

// load indexes marks found in stored records, oldest first, keeping the
// most recent max.
func (x *markIndex) load(marks []loadedMark) {
	slices.SortStableFunc(marks, func(a, b loadedMark) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	if len(marks) > x.max {
		marks = marks[len(marks)-x.max:]
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range marks {
		x.insertLocked(m.key, m.val)
	}
}

// markSaveEvery is how often the whole mark index is saved while running.
const markSaveEvery = 30 * time.Second

// A mark must outlive its record: a record is often delivered and acked
// within milliseconds, while the device resends it only after reconnecting,
// possibly to a restarted gateway. So an ack writes the marks not saved yet
// (a delta, under metaMarkDelta + the first mark's sequence number) in the
// same transaction as its deletes, and saveMarks replaces the saved index
// and every delta with one value. markPersist (Buffer.marksMu) serialises
// the two.
type markPersist struct {
	deltas [][]byte // delta keys written since the last full save
}

func markDeltaKey(from uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixMeta, metaMarkDelta}, from)
}

// ackDelete deletes acked records' keys together with the marks not saved
// yet, so no acked record's mark is lost in a crash, and writes the
// records' history (nil: none) no later than the deletes.
func (b *Buffer) ackDelete(keys [][]byte, hist *history) error {
	if len(keys) == 0 {
		return nil
	}
	b.marksMu.Lock()
	defer b.marksMu.Unlock()
	from, to, data := b.marks.unsaved()
	if len(data) == 0 {
		return b.deleteKeysAfter(hist.write, keys)
	}
	key := markDeltaKey(from)
	err := b.deleteKeysAfter(func(w *txnWriter) error {
		if err := hist.write(w); err != nil {
			return err
		}
		return w.do(func(txn *badger.Txn) error { return txn.Set(key, data) })
	}, keys)
	if err == nil {
		b.marksPersist.deltas = append(b.marksPersist.deltas, key)
		b.marks.markSaved(to)
	}
	return err
}

// saveMarks writes the whole index as one value and removes the deltas, if
// anything changed since the last save.
func (b *Buffer) saveMarks() {
	b.marksMu.Lock()
	defer b.marksMu.Unlock()
	data, seq, changed := b.marks.snapshot()
	if !changed && len(b.marksPersist.deltas) == 0 {
		return
	}
	err := b.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte{prefixMeta, metaMarks}, data); err != nil {
			return err
		}
		for _, k := range b.marksPersist.deltas {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.log.Warn("save resend marks", "err", err)
		return
	}
	b.marksPersist.deltas = b.marksPersist.deltas[:0]
	b.marks.markSaved(seq)
}

// loadMarks reads the saved index, then the deltas in the order they were
// written; marks of stored records are added by load, after them, as they
// are at least as new.
func (b *Buffer) loadMarks() error {
	return b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte{prefixMeta, metaMarks})
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := item.Value(b.restoreMarks); err != nil {
				return err
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixMeta, metaMarkDelta}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b.marksPersist.deltas = append(b.marksPersist.deltas, it.Item().KeyCopy(nil))
			if err := it.Item().Value(b.restoreMarks); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *Buffer) restoreMarks(v []byte) error {
	if !b.marks.restore(v) {
		b.log.Warn("ignoring malformed saved resend marks")
	}
	return nil
}

// snapshot encodes the index oldest first, 16 bytes a mark.
func (x *markIndex) snapshot() (data []byte, seq uint64, changed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	start := uint64(0)
	if x.seq > uint64(x.max) {
		start = x.seq - uint64(x.max)
	}
	return x.encodeLocked(start), x.seq, x.seq != x.saved
}

// unsaved encodes the marks inserted since the last save (full or delta),
// oldest first; to is the sequence number they reach.
func (x *markIndex) unsaved() (from, to uint64, data []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	from = x.saved
	if x.seq > uint64(x.max) {
		from = max(from, x.seq-uint64(x.max))
	}
	return from, x.seq, x.encodeLocked(from)
}

// markSaved records that the marks up to seq are on disk.
func (x *markIndex) markSaved(seq uint64) {
	x.mu.Lock()
	x.saved = max(x.saved, seq)
	x.mu.Unlock()
}

// encodeLocked encodes the current marks inserted from start on.
func (x *markIndex) encodeLocked(start uint64) []byte {
	if start >= x.seq {
		return nil
	}
	data := make([]byte, 0, int(x.seq-start)*markSize)
	for s := start; s < x.seq; s++ {
		key := x.ring[s%uint64(x.max)]
		e, ok := x.index[key]
		if !ok || e.seq != s {
			continue // replaced by a newer mark with the same key
		}
		data = binary.BigEndian.AppendUint64(data, key)
		data = binary.BigEndian.AppendUint64(data, e.val)
	}
	return data
}

// restore inserts a snapshot's marks; false if it is malformed.
func (x *markIndex) restore(data []byte) bool {
	if len(data)%markSize != 0 {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for ; len(data) > 0; data = data[markSize:] {
		x.insertLocked(binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:]))
	}
	x.saved = x.seq
	return true
}
