package buffer

// Refusing says why Append refuses new records now, or "" when it accepts
// them: the disk guard tripped (less than min_free_bytes free: every
// Append fails with ErrFull), or max_bytes was reached under overflow:
// reject (appends that do not fit fail with ErrFull until usage is back
// under 90%). Under drop_oldest a full buffer still accepts. It is safe
// for concurrent use and cheap (no I/O): the gateway's readiness asks it
// on every probe.
func (b *Buffer) Refusing() string {
	if b.diskLow.Load() {
		return "less than min_free_bytes free on disk: refusing new events"
	}
	b.mu.Lock()
	rejecting := b.rejecting
	b.mu.Unlock()
	if rejecting {
		return "full (max_bytes reached, overflow: reject): refusing new events"
	}
	return ""
}
