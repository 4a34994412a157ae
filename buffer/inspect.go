package buffer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrNoQueue is returned by List, Get and Delete for a queue that does not
// exist.
var ErrNoQueue = errors.New("no such queue")

// ErrNotFound is returned by Get for a record that is not stored.
var ErrNotFound = errors.New("record not found")

// Entry is one stored record as List and Get read it, without leasing it.
type Entry struct {
	Seq      uint64    // its position in the queue: ascending in append order
	Appended time.Time // when it was appended (a retained record keeps its original time)
	Size     int       // length of Data
	Data     []byte    // belongs to the caller; nil with ListOptions.NoData
}

// QueueInfo describes one queue.
type QueueInfo struct {
	Name string
	// Records and Bytes count the stored records, leased ones included.
	Records, Bytes int64
	// Oldest is when the oldest stored record was appended (zero: none).
	Oldest time.Time
	// Next is the seq the next record appended to the queue will get:
	// ListOptions.Before = Next bounds a walk to the records stored now.
	Next uint64
}

// Queues describes every queue, histories included, sorted by name.
func (b *Buffer) Queues() ([]QueueInfo, error) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.mu.Lock()
	infos := make([]QueueInfo, 0, len(b.qlist))
	ids := make([]uint16, 0, len(b.qlist))
	for _, q := range b.qlist {
		infos = append(infos, QueueInfo{Name: q.name, Records: q.records, Bytes: q.bytes, Next: q.tail})
		ids = append(ids, q.id)
	}
	b.mu.Unlock()
	err := b.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			if infos[i].Records == 0 {
				continue
			}
			it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(id)})
			for it.Rewind(); it.Valid(); it.Next() {
				var t int64
				ok := false
				if err := it.Item().Value(func(v []byte) error {
					t, _, _, ok = splitVal(v)
					return nil
				}); err != nil {
					it.Close()
					return fmt.Errorf("read queue %q: %w", infos[i].Name, err)
				}
				if ok {
					infos[i].Oldest = time.Unix(0, t)
					break
				}
			}
			it.Close()
		}
		return nil
	})
	slices.SortFunc(infos, func(a, b QueueInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos, err
}

// ListOptions selects the records List returns.
type ListOptions struct {
	// From is the first seq looked at.
	From uint64
	// Before, if not 0, excludes seqs from Before on.
	Before uint64
	// Since and Until, if not zero, keep records appended at or after
	// Since and before Until.
	Since, Until time.Time
	// Limit caps the entries returned (≤ 0: 100).
	Limit int
	// MaxBytes, if > 0, stops before the data returned would exceed it;
	// the first entry is returned whatever its size.
	MaxBytes int
	// NoData leaves Entry.Data nil (Size is still set).
	NoData bool
}

// List returns the stored records of queue that opts selects, oldest first,
// and the seq to continue from (next is 0 when the walk reached the end of
// the queue). It reads a snapshot and leases nothing: a consumer may be
// handing the same records out, and records appended meanwhile may or may
// not be seen.
func (b *Buffer) List(queue string, opts ListOptions) (entries []Entry, next uint64, err error) {
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return nil, 0, ErrClosed
	}
	q, err := b.lookup(queue)
	if err != nil {
		return nil, 0, err
	}
	since, until := opts.Since.UnixNano(), opts.Until.UnixNano()
	size := 0
	err = b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(q.id)})
		defer it.Close()
		for it.Seek(recKey(make([]byte, 0, recKeyLen), q.id, opts.From)); it.Valid(); it.Next() {
			item := it.Item()
			_, seq, ok := parseRecKey(item.Key())
			if !ok {
				continue
			}
			if opts.Before != 0 && seq >= opts.Before {
				return nil
			}
			if len(entries) >= opts.Limit {
				next = seq
				return nil
			}
			var e Entry
			took := false
			err := item.Value(func(v []byte) error {
				t, _, data, vok := splitVal(v)
				if !vok || !opts.Since.IsZero() && t < since || !opts.Until.IsZero() && t >= until {
					return nil
				}
				if opts.MaxBytes > 0 && len(entries) > 0 && size+len(data) > opts.MaxBytes {
					next = seq
					return nil
				}
				e = Entry{Seq: seq, Appended: time.Unix(0, t), Size: len(data)}
				if !opts.NoData {
					e.Data = append([]byte(nil), data...)
				}
				took = true
				return nil
			})
			if err != nil {
				return fmt.Errorf("read queue %q: %w", queue, err)
			}
			if next != 0 {
				return nil
			}
			if took {
				size += e.Size
				entries = append(entries, e)
			}
		}
		return nil
	})
	return entries, next, err
}

// Get returns record seq of queue, without leasing it.
func (b *Buffer) Get(queue string, seq uint64) (Entry, error) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return Entry{}, ErrClosed
	}
	q, err := b.lookup(queue)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	err = b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recKey(nil, q.id, seq))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			t, _, data, ok := splitVal(v)
			if !ok {
				return badger.ErrKeyNotFound
			}
			e = Entry{Seq: seq, Appended: time.Unix(0, t), Size: len(data), Data: append([]byte(nil), data...)}
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Entry{}, fmt.Errorf("queue %q record %d: %w", queue, seq, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("read queue %q: %w", queue, err)
	}
	return e, nil
}

// Delete removes the records seqs of queue and returns how many it removed
// (seqs not stored are skipped). It is safe while the queue's consumer
// runs: a record it holds leased is still in its hands, but its Ack or
// Nack no longer counts or returns it; a record not handed out yet never
// will be. The delete is committed to disk when Delete returns.
func (b *Buffer) Delete(queue string, seqs []uint64) (int, error) {
	if b.readOnly {
		return 0, ErrReadOnly
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return 0, ErrClosed
	}
	q, err := b.lookup(queue)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	keys, taken, err := q.takeLocked(seqs)
	b.mu.Unlock()
	if err == nil {
		err = b.deleteKeys(keys)
	}
	b.mu.Lock()
	for _, seq := range taken {
		delete(q.deleting, seq)
	}
	b.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("delete %d records of queue %q: %w", len(keys), queue, err)
	}
	return len(keys), nil
}

// takeLocked removes the stored records seqs from the accounting and from
// any lease, and marks them being deleted (so Next skips them) until the
// caller has deleted the returned keys and unmarked taken.
func (q *Queue) takeLocked(seqs []uint64) (keys [][]byte, taken []uint64, err error) {
	b := q.b
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	for _, seq := range seqs {
		if _, del := q.deleting[seq]; del || seq < q.floor {
			continue // being deleted by an ack, or dropped
		}
		key := recKey(make([]byte, 0, recKeyLen), q.id, seq)
		item, gerr := txn.Get(key)
		if errors.Is(gerr, badger.ErrKeyNotFound) {
			continue
		}
		if gerr != nil {
			err = gerr
			break
		}
		var n int64
		if verr := item.Value(func(v []byte) error { n = int64(len(v)) - valHeadSize; return nil }); verr != nil {
			err = verr
			break
		}
		delete(q.leased, seq)
		q.deleting[seq] = struct{}{}
		q.subtractLocked(max(n, 0))
		q.clearRecentLocked() // Next must not hand it out from memory
		keys = append(keys, key)
		taken = append(taken, seq)
	}
	if len(keys) > 0 {
		q.updateGauges()
		b.updateGaugesLocked()
		b.overflowEpisodeLocked(0, 0, 0) // may end a full episode
	}
	return keys, taken, err
}

// lookup returns the queue called name without creating it.
func (b *Buffer) lookup(name string) (*Queue, error) {
	b.qmu.RLock()
	q := b.queues[name]
	b.qmu.RUnlock()
	if q == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoQueue, name)
	}
	return q, nil
}
