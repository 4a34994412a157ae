package buffer

import (
	"time"
)

// The wall clock can step: a Raspberry Pi without a real-time clock boots
// in 1970 (or at the time fake-hwclock saved) and jumps to the real time
// when NTP answers; an operator sets it back an hour. Records are ordered
// by sequence, never by time, so a step cannot reorder or duplicate them;
// but max_age and retain compare stored append times with the wall clock,
// and a step forward would expire at once every record stored before it.
//
// So the buffer watches the wall clock against the monotonic clock (Go's
// time.Since) every clockEvery. A step forward of more than
// clockStepThreshold adds its size to the append times of the records this
// process stored before it, wherever an age is judged (expiry, retained
// history, Batch.AppendedAt): their age is then the time they really
// waited. A step back shifts nothing: records stored before it look younger
// and are kept up to the step longer, never expired early. Both are logged
// and counted (edgegate_clock_jumps_total{direction}).
//
// Shifts live in memory: after a restart the stored times are judged as
// they are, except times before plausibleFloor (a clock that was never
// set): those count as stored when this process opened the buffer (moved
// by any step forward it saw since), so a backlog stored "in 1970" is not
// expired when the gateway restarts after NTP set the clock.
const (
	clockEvery         = time.Second
	clockStepThreshold = 2 * time.Second
)

// plausibleFloor is the earliest append time (Unix ns) taken as read: no
// clock that was ever set reads earlier than this code.
func plausibleFloor() int64 { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() }

// clockShift adds delta (ns) to the append times of a queue's records with
// seq in [Queue.openTail, below): stored by this process before a step
// forward of the wall clock.
type clockShift struct {
	below uint64
	delta int64
}

// clockWatch holds what watchClock compares. Guarded by b.mu.
type clockWatch struct {
	mono     func() time.Duration // monotonic time since Open
	lastWall int64                // b.now() at the last look, Unix ns
	lastMono time.Duration        // mono() at the last look
	openedAt int64                // b.now() at Open, moved by steps forward, Unix ns
}

// initClock starts the watch at Open. Without WithMonotonic, the monotonic
// clock is Go's; with WithClock alone, it follows that clock (so a test's
// clock that moves on by hours is not a step).
func (b *Buffer) initClock() {
	now := b.now()
	if b.clock.mono == nil {
		if b.customClock {
			b.clock.mono = func() time.Duration { return b.now().Sub(now) }
		} else {
			start := time.Now()
			b.clock.mono = func() time.Duration { return time.Since(start) }
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clock.lastWall, b.clock.lastMono = now.UnixNano(), b.clock.mono()
	b.clock.openedAt = now.UnixNano()
}

// watchClock compares the wall time and the monotonic time elapsed since
// its last look; a difference beyond clockStepThreshold is a step of the
// wall clock. It returns the step, 0 when there was none.
func (b *Buffer) watchClock() time.Duration {
	b.mu.Lock()
	wall, mono := b.now().UnixNano(), b.clock.mono()
	step := (wall - b.clock.lastWall) - int64(mono-b.clock.lastMono)
	b.clock.lastWall, b.clock.lastMono = wall, mono
	if step < int64(clockStepThreshold) && step > -int64(clockStepThreshold) {
		b.mu.Unlock()
		return 0
	}
	if step < 0 {
		b.mu.Unlock()
		b.m.clockBack.Inc()
		b.log.Warn("wall clock stepped back: records stored before keep their times, so they are kept up to the step longer than max_age",
			"step", time.Duration(-step).String())
		return time.Duration(step)
	}
	var shifted uint64
	for _, q := range b.qlist {
		if q.tail > q.openTail {
			q.shifts = append(q.shifts, clockShift{below: q.tail, delta: step})
			shifted += q.tail - q.openTail
		}
	}
	b.clock.openedAt += step
	b.mu.Unlock()
	b.m.clockForward.Inc()
	b.log.Warn("wall clock stepped forward: the ages of records stored before are measured by the monotonic clock",
		"step", time.Duration(step).String(), "records_at_most", shifted)
	return time.Duration(step)
}

// appendedAtLocked returns the append time, Unix ns, by which the age of
// record seq of q, stored at t, is judged (see clockWatch).
func (b *Buffer) appendedAtLocked(q *Queue, seq uint64, t int64) int64 {
	if seq >= q.openTail {
		for _, s := range q.shifts {
			if seq < s.below {
				t += s.delta
			}
		}
		return t
	}
	if t < plausibleFloor() {
		return max(t, b.clock.openedAt)
	}
	return t
}
