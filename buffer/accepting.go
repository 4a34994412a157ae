package buffer

import "fmt"

// Refusing says why Append refuses new records now, or "" when it accepts
// them: the buffer met a damaged table (damage.go: every Append fails with
// ErrDamaged), the disk guard tripped (free space under the floor,
// min_free_bytes plus Badger's room: every Append fails with ErrFull), or
// max_bytes was reached under overflow: reject (appends that do not fit
// fail with ErrFull until usage is back under 90%). Under drop_oldest a
// full buffer still accepts. It is safe for concurrent use and cheap (no
// I/O): the gateway's readiness asks it on every probe.
func (b *Buffer) Refusing() string {
	if err := b.Damaged(); err != nil {
		return err.Error() + ": refusing new events; stop the gateway and run `edgegate buffer repair`"
	}
	if b.diskLow.Load() {
		return fmt.Sprintf("disk almost full (%d bytes free, %d needed to accept events: min_free_bytes and Badger's room): refusing new events",
			b.freeSeen.Load(), b.floorSeen.Load())
	}
	b.mu.Lock()
	rejecting := b.rejecting
	b.mu.Unlock()
	if rejecting {
		return "full (max_bytes reached, overflow: reject): refusing new events"
	}
	return ""
}
