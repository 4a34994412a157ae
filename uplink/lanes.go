package uplink

import (
	"container/heap"
	"sync"

	"github.com/edgegate/edgegate/cloudevent"
)

// lanes schedules one batch's requests in binary and structured mode: one
// lane per source, holding that source's events in batch order. A lane has
// at most one request in flight, so a source's events arrive in order; a
// free worker takes the next event of the idle lane with the most events
// left. Lanes thus drain evenly and a batch takes about
// max(events/workers, longest lane) round trips, where handing out whole
// sources to workers took up to a whole lane's length more (the workers
// that finished early idle while the last sources run alone).
//
// take and done are safe for concurrent use by the workers.
type lanes struct {
	mu      sync.Mutex
	cond    sync.Cond
	idle    laneHeap // lanes with events left and no request in flight
	all     []lane
	busy    int  // lanes with a request in flight
	stopped bool // no request starts any more
}

// lane is one source's events not yet sent: record indices, in order.
type lane struct{ idx []int }

func newLanes(events []*cloudevent.Event) *lanes {
	l := &lanes{}
	l.cond.L = &l.mu
	slot := make(map[string]int) // source → its lane
	for i, e := range events {
		j, ok := slot[e.Source]
		if !ok {
			j = len(l.all)
			slot[e.Source] = j
			l.all = append(l.all, lane{})
		}
		l.all[j].idx = append(l.all[j].idx, i)
	}
	l.idle = laneHeap{all: l.all, order: make([]int, len(l.all))}
	for j := range l.all {
		l.idle.order[j] = j
	}
	heap.Init(&l.idle)
	return l
}

// count returns the number of lanes (sources).
func (l *lanes) count() int { return len(l.all) }

// take returns the next record to send and its lane, waiting while every
// lane with events left has a request in flight. ok is false when nothing
// is left to start: every lane is empty, or stop was called.
func (l *lanes) take() (lane, record int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.stopped {
			return 0, 0, false
		}
		if l.idle.Len() > 0 {
			j := heap.Pop(&l.idle).(int)
			ln := &l.all[j]
			record, ln.idx = ln.idx[0], ln.idx[1:]
			l.busy++
			return j, record, true
		}
		if l.busy == 0 {
			return 0, 0, false
		}
		l.cond.Wait()
	}
}

// done hands lane j back after its request; its next event may go. It
// wakes one waiting worker for the lane, or all of them when nothing is
// left to wait for (waking all on every request had every idle worker
// run for nothing).
func (l *lanes) done(j int) {
	l.mu.Lock()
	l.busy--
	requeued := len(l.all[j].idx) > 0
	if requeued {
		heap.Push(&l.idle, j)
	}
	last := l.busy == 0
	l.mu.Unlock()
	switch {
	case requeued:
		l.cond.Signal()
	case last:
		l.cond.Broadcast()
	}
}

// stop makes take return false from now on (after a failure, or when the
// context ends): no new request starts.
func (l *lanes) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.cond.Broadcast()
}

// laneHeap is a max-heap of lane numbers by events left (container/heap).
type laneHeap struct {
	all   []lane
	order []int
}

func (h laneHeap) Len() int { return len(h.order) }
func (h laneHeap) Less(a, b int) bool {
	la, lb := len(h.all[h.order[a]].idx), len(h.all[h.order[b]].idx)
	return la > lb || la == lb && h.order[a] < h.order[b]
}
func (h laneHeap) Swap(a, b int) { h.order[a], h.order[b] = h.order[b], h.order[a] }
func (h *laneHeap) Push(x any)   { h.order = append(h.order, x.(int)) }
func (h *laneHeap) Pop() any {
	n := len(h.order) - 1
	x := h.order[n]
	h.order = h.order[:n]
	return x
}
