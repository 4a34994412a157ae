package buffer

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// admission is what the overflow policy made of one round: the appends to
// write (their seqs assigned), the bytes they add, the keys of the stored
// records dropped to make room for them (drop_oldest), and the appends
// refused (reject).
type admission struct {
	accepted []*appendReq
	add      int64
	drops    [][]byte
	rejected []*appendReq
}

// admit applies the overflow policy to a round under the capacity:
// drop_oldest accepts everything and selects the oldest records to drop,
// reject refuses the appends that do not fit. The dropped records leave the
// accounting here; the caller deletes their keys.
func (b *Buffer) admit(reqs []*appendReq) admission {
	limit := b.capacity()
	b.mu.Lock()
	defer b.mu.Unlock()
	adm := admission{accepted: make([]*appendReq, 0, len(reqs))}
	if b.cfg.Overflow == Reject {
		// Retained history makes room before anything is refused.
		var total int64
		for _, r := range reqs {
			total += r.bytes
		}
		if need := b.bytes + total - limit; need > 0 {
			adm.drops = b.selectRetainedLocked(need)
		}
	}
	for _, r := range reqs {
		if b.cfg.Overflow == Reject && b.bytes+adm.add+r.bytes > limit {
			adm.rejected = append(adm.rejected, r)
			continue
		}
		adm.add += r.bytes
		adm.accepted = append(adm.accepted, r)
	}
	lost := 0
	if need := b.bytes + adm.add - limit; need > 0 && b.cfg.Overflow == DropOldest {
		var err error
		adm.drops, lost, err = b.selectOldestSplitLocked(need, reasonOverflow)
		if err != nil {
			b.log.Error("select records to drop", "err", err)
		}
	}
	b.overflowEpisodeLocked(lost, len(adm.rejected), adm.add)
	for _, r := range adm.accepted {
		r.seqs = make([]uint64, len(r.recs))
		for i, q := range r.qs {
			r.seqs[i] = q.tail
			q.tail++
		}
	}
	return adm
}

// overflowEpisodeLocked logs once when appends start being dropped or
// rejected for lack of room, and once when usage (retained history aside:
// it makes room whenever asked) is back under 90%.
func (b *Buffer) overflowEpisodeLocked(dropped, rejected int, add int64) {
	max := int64(b.cfg.MaxBytes)
	switch {
	case dropped > 0:
		if !b.dropping {
			b.dropping = true
			b.log.Warn("buffer full: dropping oldest records", "max_bytes", b.cfg.MaxBytes.String())
		}
		b.episode += int64(dropped)
	case rejected > 0:
		if !b.rejecting {
			b.rejecting = true
			b.log.Warn("buffer full: rejecting appends", "max_bytes", b.cfg.MaxBytes.String())
		}
		b.episode += int64(rejected)
	case (b.dropping || b.rejecting) && (b.bytes-b.retainedBytesLocked()+add)*10 <= max*9:
		if b.dropping {
			b.log.Info("buffer no longer full", "dropped_records", b.episode)
		} else {
			b.log.Info("buffer no longer full", "rejected_appends", b.episode)
		}
		b.dropping, b.rejecting, b.episode = false, false, 0
	}
}

// headCursor walks one queue's stored records from its oldest.
type headCursor struct {
	q    *Queue
	it   *badger.Iterator
	key  []byte
	seq  uint64
	t    int64 // append time, unix nanoseconds, as ages are judged (appendedAtLocked)
	size int64
}

// openHeadsLocked opens a cursor on the oldest record of every non-empty
// queue (only the retained histories, if onlyRetained). The caller closes
// the iterators and discards txn.
func (b *Buffer) openHeadsLocked(txn *badger.Txn, onlyRetained bool) ([]*headCursor, error) {
	var heads []*headCursor
	for _, q := range b.qlist {
		if onlyRetained && !q.retained {
			continue
		}
		start := q.seekStartLocked()
		if start >= q.tail {
			continue
		}
		h := &headCursor{q: q, it: txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(q.id)})}
		h.it.Seek(recKey(nil, q.id, start))
		ok, err := h.load()
		if !ok || err != nil {
			h.it.Close()
		}
		if err != nil {
			closeHeads(heads)
			return nil, err
		}
		if ok {
			heads = append(heads, h)
		}
	}
	return heads, nil
}

func closeHeads(heads []*headCursor) {
	for _, h := range heads {
		h.it.Close()
	}
}

// load positions h on the next stored record not being deleted by an Ack.
func (h *headCursor) load() (bool, error) {
	for ; h.it.Valid(); h.it.Next() {
		item := h.it.Item()
		_, seq, ok := parseRecKey(item.Key())
		if !ok {
			continue
		}
		if _, del := h.q.deleting[seq]; del {
			continue
		}
		if err := item.Value(func(v []byte) error {
			h.t, h.size = 0, 0
			if t, _, _, ok := splitVal(v); ok {
				h.t = h.q.b.appendedAtLocked(h.q, seq, t) // as ages are judged
				h.size = int64(len(v) - valHeadSize)
			}
			return nil
		}); err != nil {
			return false, fmt.Errorf("read queue %q: %w", h.q.name, err)
		}
		h.seq = seq
		h.key = item.KeyCopy(nil)
		return true, nil
	}
	return false, nil
}

// dropLocked removes h's record from the accounting and from any lease, and
// raises the queue's floor so nothing hands it out again. The caller deletes
// the key.
func (h *headCursor) dropLocked() {
	q := h.q
	delete(q.leased, h.seq)
	q.subtractLocked(h.size)
	q.floor = max(q.floor, h.seq+1)
}

// selectOldestLocked chooses the oldest stored records, retained histories
// first and then across all queues by append time, until at least need
// bytes are freed, removes them from the accounting and returns their keys,
// which the caller must delete.
func (b *Buffer) selectOldestLocked(need int64, reason string) ([][]byte, error) {
	keys, _, err := b.selectOldestSplitLocked(need, reason)
	return keys, err
}

// selectOldestSplitLocked is selectOldestLocked; lost counts the keys that
// were not retained history (records never delivered).
func (b *Buffer) selectOldestSplitLocked(need int64, reason string) (keys [][]byte, lost int, err error) {
	keys, freed, err := b.pickOldestLocked(need, true)
	retained := len(keys)
	if err == nil && freed < need {
		var more [][]byte
		more, _, err = b.pickOldestLocked(need-freed, false)
		lost = len(more)
		keys = append(keys, more...)
	}
	b.afterDropLocked(lost, retained, reason)
	return keys, lost, err
}

// pickOldestLocked is selectOldestLocked's walk, over the retained
// histories only or over every queue, without the metrics.
func (b *Buffer) pickOldestLocked(need int64, onlyRetained bool) (keys [][]byte, freed int64, err error) {
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	heads, err := b.openHeadsLocked(txn, onlyRetained)
	if err != nil {
		return nil, 0, err
	}
	defer func() { closeHeads(heads) }()
	for freed < need && len(heads) > 0 {
		bi := 0
		for i, h := range heads[1:] {
			if h.t < heads[bi].t {
				bi = i + 1
			}
		}
		h := heads[bi]
		h.dropLocked()
		keys = append(keys, h.key)
		freed += h.size
		h.it.Next()
		ok, lerr := h.load()
		if !ok || lerr != nil {
			h.it.Close()
			heads = append(heads[:bi], heads[bi+1:]...)
		}
		if lerr != nil {
			err = lerr
			break
		}
	}
	return keys, freed, err
}

// selectExpiredLocked chooses up to limit records appended before cutoff
// (retained history: before retainCutoff), like selectOldestLocked. lost
// counts those that were not retained history; more says the limit was
// reached.
func (b *Buffer) selectExpiredLocked(cutoff, retainCutoff int64, limit int) (keys [][]byte, lost int, more bool, err error) {
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	heads, err := b.openHeadsLocked(txn, false)
	if err != nil {
		return nil, 0, false, err
	}
	defer closeHeads(heads)
	for _, h := range heads {
		c := cutoff
		if h.q.retained {
			c = retainCutoff
		}
		for h.t < c {
			if len(keys) >= limit {
				more = true
				break
			}
			h.dropLocked()
			keys = append(keys, h.key)
			if !h.q.retained {
				lost++
			}
			h.it.Next()
			ok, lerr := h.load()
			if lerr != nil {
				err = lerr
			}
			if !ok {
				break
			}
		}
		if more || err != nil {
			break
		}
	}
	b.afterDropLocked(lost, len(keys)-lost, reasonExpired)
	return keys, lost, more, err
}

// afterDropLocked publishes the gauges and counts the records removed for
// reason: lost (never delivered) and retained (delivered, in a history).
func (b *Buffer) afterDropLocked(lost, retained int, reason string) {
	if lost+retained == 0 {
		return
	}
	for _, q := range b.qlist {
		q.updateGauges()
	}
	b.updateGaugesLocked()
	b.m.dropped.of(reason).Add(lost)
	b.m.retained.of(reason).Add(retained)
}
