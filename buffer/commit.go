package buffer

import (
	"context"
	"fmt"
	"time"
)

// maxRoundRecords caps the records of one group commit.
const maxRoundRecords = 20000

type appendReq struct {
	recs  []Record
	marks []Mark
	qs    []*Queue
	seqs  []uint64
	bytes int64
	err   error
	done  chan struct{}
}

func (r *appendReq) finish(err error) {
	r.err = err
	close(r.done)
}

// Append stores recs and returns once they are committed to disk. Every
// commit is fsync'd (Badger SyncWrites), so durable is accepted for API
// symmetry and a nil error always means the records survive power loss.
// Append is safe for many concurrent callers; concurrent calls are committed
// together (group commit).
//
// It returns ErrFull when the records cannot be stored (see ErrFull), a
// *DamageError (ErrDamaged) once the buffer met a damaged table,
// ErrClosed after Run has returned, or ctx's error if ctx ends first; in that
// last case the records may still be committed. Append blocks until Run is
// started.
//
// marks[i], if given, is stored with recs[i] (see Mark); extra marks are
// ignored.
func (b *Buffer) Append(ctx context.Context, recs []Record, durable bool, marks ...Mark) error {
	_ = durable
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.diskLow.Load() {
		b.m.rejectedDisk.Add(len(recs))
		return ErrFull
	}
	if err := b.Damaged(); err != nil {
		return err
	}
	req := &appendReq{recs: recs, marks: marks, qs: make([]*Queue, len(recs)), done: make(chan struct{})}
	for i, r := range recs {
		q, err := b.Queue(r.Queue)
		if err != nil {
			return err
		}
		req.qs[i] = q
		req.bytes += int64(len(r.Data))
		if i < len(marks) {
			req.bytes += markSize
		}
	}
	if req.bytes > int64(b.cfg.MaxBytes) {
		b.m.rejectedFull.Add(len(recs))
		return ErrFull
	}
	b.pmu.Lock()
	if b.stopping {
		b.pmu.Unlock()
		return ErrClosed
	}
	b.pending = append(b.pending, req)
	if b.want > 0 && len(b.pending) >= b.want {
		b.want = 0
		select {
		case b.gathered <- struct{}{}:
		default:
		}
	}
	b.pmu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the group committer: it commits every pending Append in as
// few transactions (and fsyncs) as possible.
func (b *Buffer) commitLoop(ctx context.Context) {
	for {
		select {
		case <-b.kick:
		case <-ctx.Done():
			b.pmu.Lock()
			b.stopping = true
			b.pmu.Unlock()
			for b.commitPending() {
			}
			return
		}
		for b.gather(ctx); b.commitPending(); b.gather(ctx) {
			b.pace(ctx)
		}
	}
}

// gatherDelay bounds how long the committer waits for more appenders before
// a commit. Appenders released by one commit need a few microseconds to come
// back; without the wait, 100 appenders split into two alternating half-sized
// groups and each fsync carries half the records.
const gatherDelay = 200 * time.Microsecond

// gather waits, at most gatherDelay, until as many appends are pending as in
// the largest recent round, when recent rounds had several appenders.
func (b *Buffer) gather(ctx context.Context) {
	b.pmu.Lock()
	target := b.peak
	if target < 2 || len(b.pending) == 0 || len(b.pending) >= target || b.stopping {
		b.pmu.Unlock()
		return
	}
	b.want = target
	b.pmu.Unlock()
	t := time.NewTimer(gatherDelay)
	select {
	case <-b.gathered:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	b.pmu.Lock()
	b.want = 0
	b.pmu.Unlock()
	select {
	case <-b.gathered:
	default:
	}
}

// commitPending commits one round of pending appends, at most max_bytes of
// records (so that dropping stored records can always make room) and
// maxRoundRecords records. It reports whether there was anything to commit.
func (b *Buffer) commitPending() bool {
	b.pmu.Lock()
	n := 0
	var bytes, count int64
	for n < len(b.pending) {
		r := b.pending[n]
		if n > 0 && (bytes+r.bytes > int64(b.cfg.MaxBytes) || count+int64(len(r.recs)) > maxRoundRecords) {
			break
		}
		bytes += r.bytes
		count += int64(len(r.recs))
		n++
	}
	b.peak = max(n, b.peak-b.peak/8)
	acks := b.takeAcksLocked()
	round := b.pending[:n:n]
	if n == len(b.pending) {
		b.pending = nil
	} else {
		b.pending = append([]*appendReq(nil), b.pending[n:]...)
	}
	b.pmu.Unlock()
	if n == 0 && len(acks) == 0 {
		return false
	}
	b.commitRound(round, count, acks)
	return true
}

// commitRound commits one round of appends and acks: it refuses the
// appends while the disk is nearly full, else admits them under the
// overflow policy and writes the admitted records and the drops that make
// room for them, with the acks' deletes.
func (b *Buffer) commitRound(reqs []*appendReq, count int64, acks []*ackReq) {
	start := time.Now()
	b.lastRound = start
	var adding int64
	for _, r := range reqs {
		adding += r.bytes
	}
	if b.diskLowSoon(adding) {
		for _, r := range reqs {
			b.m.rejectedDisk.Add(len(r.recs))
			r.finish(ErrFull)
		}
		if len(acks) > 0 {
			b.writeRound(admission{}, 0, 0, acks)
		}
		return
	}
	now := b.now().UnixNano()
	adm := b.admit(reqs)
	for _, r := range adm.rejected {
		b.m.rejectedFull.Add(len(r.recs))
		r.finish(ErrFull)
	}
	if len(adm.accepted) == 0 && len(adm.drops) == 0 && len(acks) == 0 {
		return
	}
	b.writeRound(adm, count, now, acks)
	b.sinceCheck.Add(adding)
	b.m.commitRecords.Update(float64(count))
	b.m.commitSeconds.UpdateDuration(start)
}

// writeRound deletes the round's drops, writes its acks (ackcommit.go) and
// its accepted records, stamped now, in as few transactions as Badger
// allows. Each accepted append is released by the commit that holds its
// last record, the acks by the last commit; if a commit fails, every append
// not yet released fails.
func (b *Buffer) writeRound(adm admission, count, now int64, acks []*ackReq) {
	// One slab for every key and value of the round.
	slab := make([]byte, 0, int(count)*(recKeyLen+valHeadSize)+int(adm.add))
	w := b.newTxnWriter()
	for _, k := range adm.drops {
		if err := w.delete(k); err != nil {
			break
		}
	}
	finishAcks := b.writeAcks(w, acks)
	for _, r := range adm.accepted {
		if w.err != nil {
			break
		}
		slab = r.write(w, now, slab)
		w.done = append(w.done, r)
	}
	w.commit()
	finishAcks(w.err)
	if w.err == nil {
		return
	}
	// Everything not finished by a successful commit fails.
	for _, r := range adm.accepted {
		select {
		case <-r.done:
		default:
			r.finish(fmt.Errorf("commit to buffer: %w", w.err))
		}
	}
	b.log.Error("commit to buffer", "err", w.err)
}

// write adds r's records to w, encoding their keys and values into slab,
// and returns the slab. It stops at w's first error.
func (r *appendReq) write(w *txnWriter, now int64, slab []byte) []byte {
	for i, rec := range r.recs {
		q := r.qs[i]
		off := len(slab)
		slab = recKey(slab, q.id, r.seqs[i])
		key := slab[off:len(slab):len(slab)]
		off = len(slab)
		var mark *Mark
		if i < len(r.marks) {
			mark = &r.marks[i]
		}
		slab = appendVal(slab, now, mark, rec.Data)
		val := slab[off:len(slab):len(slab)]
		if err := w.set(q, r.seqs[i], key, val); err != nil {
			break
		}
	}
	return slab
}

// pace waits, after a commit round, until commit_interval has passed since
// it started, so that the appends arriving meanwhile share the next commit.
func (b *Buffer) pace(ctx context.Context) {
	d := b.cfg.CommitInterval - time.Since(b.lastRound)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
