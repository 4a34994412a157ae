package buffer

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// Acks ride in the committer's rounds. Every Badger commit is a write
// request that syncs its memtable log and the value log (two msyncs, each
// writing at least one whole page), so an ack committed on its own cost as
// much disk time, and as many bytes written, as a round of appends: at a
// fixed 5,000 events/s the forwarder acks about a thousand small batches a
// second, and those syncs queued in Badger's single writer ahead of the
// appends that devices were waiting for. Deletes committed in the same
// transaction as the round's appends cost nothing extra; when no appends
// are pending the committer commits the acks alone, gathering every ack
// queued meanwhile into one sync.

// ackReq is one Ack's write waiting for a commit round: its deletes, and
// the history records (Config.Retain) committed no later than them.
type ackReq struct {
	keys [][]byte
	hist *history
	err  error
	done chan struct{}
}

// commitAck deletes keys (and writes hist) in the committer's next round,
// with the marks not saved yet (see ackDelete), and returns once that round
// is on disk. Without a running committer (before Run, or once Run is
// stopping) it commits them itself.
func (b *Buffer) commitAck(keys [][]byte, hist *history) error {
	if len(keys) == 0 {
		return nil
	}
	r := &ackReq{keys: keys, hist: hist, done: make(chan struct{})}
	b.pmu.Lock()
	if b.runState != 1 || b.stopping {
		b.pmu.Unlock()
		return b.ackDelete(keys, hist)
	}
	b.acks = append(b.acks, r)
	b.pmu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	<-r.done
	if errors.Is(r.err, badger.ErrBlockedWrites) {
		// Reclaim blocks writes for a moment; ackDelete waits it out.
		// Writing the same deletes and history keys again is harmless.
		return b.ackDelete(keys, hist)
	}
	return r.err
}

// takeAcks removes and returns the acks waiting for a round. The caller
// holds b.pmu.
func (b *Buffer) takeAcksLocked() []*ackReq {
	acks := b.acks
	b.acks = nil
	return acks
}

// writeAcks adds acks to w: the marks not saved yet first (a mark must be
// on disk no later than its record's delete), then each ack's history and
// deletes. It returns a function to call once w has committed, with w's
// error: it records the saved marks, releases b.marksMu (held from
// writeAcks on, as by ackDelete) and finishes every ack.
func (b *Buffer) writeAcks(w *txnWriter, acks []*ackReq) (finish func(error)) {
	if len(acks) == 0 {
		return func(error) {}
	}
	b.marksMu.Lock()
	from, to, data := b.marks.unsaved()
	var deltaKey []byte
	if len(data) > 0 {
		deltaKey = markDeltaKey(from)
		_ = w.do(func(txn *badger.Txn) error { return txn.Set(deltaKey, data) })
	}
	for _, r := range acks {
		if r.hist.write(w) != nil {
			break
		}
		for _, k := range r.keys {
			if w.delete(k) != nil {
				break
			}
		}
	}
	return func(err error) {
		if err == nil && deltaKey != nil {
			b.marksPersist.deltas = append(b.marksPersist.deltas, deltaKey)
			b.marks.markSaved(to)
		}
		b.marksMu.Unlock()
		for _, r := range acks {
			r.err = err
			close(r.done)
		}
	}
}
