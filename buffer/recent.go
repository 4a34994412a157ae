package buffer

// Next serves the records committed since the consumer last caught up from
// memory. Reading them back from Badger cost a read transaction per Next,
// and a read transaction waits until every commit in flight is on disk
// (Badger's read timestamp covers commits that have started): the
// forwarder woken by one round waited for the next round's fsync, with
// b.mu held, before it could send what the first round had stored.

// recentMax bounds the bytes a queue keeps in memory for Next: a few
// hundred milliseconds of a busy gateway's records, so that a consumer
// that keeps up never reads Badger, and a stopped one (an uplink in an
// outage) costs at most this much memory.
const recentMax = 256 << 10

// recentRec is a committed record as Next reads it.
type recentRec struct {
	seq uint64
	val []byte // stored value (appendVal)
}

// addRecentLocked adds committed records, in seq order, to q.recent.
// recent holds consecutive seqs up to q.committed: a gap (a failed commit)
// starts it again, and once it holds recentMax bytes it takes no more
// until Next has caught up. The values are copied, together, so that the
// cache holds no more than its own bytes: recs' values share the commit
// round's slab with the other queues' records, and a queue nobody reads
// (a dead-letter queue) would keep every round's slab it had a record in.
// The caller holds b.mu.
func (q *Queue) addRecentLocked(recs []recentRec) {
	if len(recs) > 0 && len(q.recent) > 0 && q.recent[len(q.recent)-1].seq+1 != recs[0].seq {
		q.clearRecentLocked()
	}
	n, size := 0, 0
	for ; n < len(recs) && !q.recentFull; n++ {
		if q.recentBytes+size+len(recs[n].val) > recentMax {
			q.recentFull = true
			break
		}
		size += len(recs[n].val)
	}
	if n == 0 {
		return
	}
	buf := make([]byte, 0, size)
	for _, r := range recs[:n] {
		off := len(buf)
		buf = append(buf, r.val...)
		q.recent = append(q.recent, recentRec{seq: r.seq, val: buf[off:len(buf):len(buf)]})
	}
	q.recentBytes += size
}

// clearRecentLocked empties q.recent: Next reads Badger instead. The
// caller holds b.mu.
func (q *Queue) clearRecentLocked() {
	clear(q.recent) // let the values go
	q.recent = q.recent[:0]
	q.recentBytes = 0
	q.recentFull = false
}

// collectRecentLocked takes records from q.recent when it starts at the
// cursor (records below the cursor were dropped, expired or leased), and
// advances the cursor past them.
func (q *Queue) collectRecentLocked(c *collector) {
	i := 0
	for i < len(q.recent) && q.recent[i].seq < q.cursor {
		q.recentBytes -= len(q.recent[i].val)
		i++
	}
	for i < len(q.recent) && q.recent[i].seq == q.cursor {
		r := q.recent[i]
		if c.full(len(r.val) - valHeadSize) {
			break
		}
		q.cursor++
		q.recentBytes -= len(r.val)
		i++
		if _, del := q.deleting[r.seq]; del {
			continue
		}
		if len(r.val) >= valHeadSize {
			c.take(r.seq, r.val)
		}
	}
	if i == len(q.recent) {
		q.clearRecentLocked()
		return
	}
	n := copy(q.recent, q.recent[i:])
	clear(q.recent[n:])
	q.recent = q.recent[:n]
}
