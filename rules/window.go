package rules

import (
	"fmt"
	"math"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// aggAction is a compiled aggregate action.
type aggAction struct {
	site  string
	value *vm.Program
	every time.Duration
	size  time.Duration
	emit  emitAction
}

// aggregate compiles an aggregate action; idx and the arguments name its
// site.
func (c *compiler) aggregate(p yamlconf.Path, idx int, a AggregateSpec, uplinks []string) *aggAction {
	out := &aggAction{every: a.Every, size: a.Size}
	if a.Value == "" {
		c.errs.Add(p.Key("value"), "is required (a number expression, e.g. data.temperature)")
	} else {
		out.value = c.prog(p.Key("value"), a.Value, false)
	}
	if a.Every < time.Second {
		c.errs.Add(p.Key("every"), "must be at least 1s")
	}
	if out.size == 0 {
		out.size = a.Every
	}
	if a.Every > 0 && (out.size < a.Every || out.size%a.Every != 0 || out.size/a.Every > maxSlideBucket) {
		c.errs.Add(p.Key("size"), "must be a multiple of every, at most %d times it", maxSlideBucket)
	}
	out.emit = *c.emit(p.Key("emit"), a.Emit, uplinks, WindowEnv{})
	out.site = fmt.Sprintf("aggregate#%d:%s|%s|%s", idx, a.Value, a.Every, out.size)
	c.sites[out.site] = &siteInfo{agg: out}
	return out
}

// aggregate adds the action's value to the key's window and emits the
// windows that closed.
func (e *evaluation) aggregate(rl *rule, a *aggAction, d *Decision) error {
	v, err := e.r.run(a.value, e.boxed)
	if err != nil {
		return fmt.Errorf("aggregate value: %w", err)
	}
	f, ok := toFloat(v)
	if !ok {
		return fmt.Errorf("aggregate value: %v is not a number", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("aggregate value: %v is not a finite number", f)
	}
	for _, c := range rl.addToWindow(a, e.r.st.key, f, e.now) {
		d.Emits = e.s.emitWindow(e.r, rl, c, e.env.GatewayID, d.Emits)
	}
	return nil
}

// addToWindow adds v to the key's window, first closing the windows that
// ended by now, and returns those.
func (rl *rule) addToWindow(a *aggAction, key string, v float64, now time.Time) (closed []windowClose) {
	rl.state.update(stateKey{site: a.site, key: key}, now, func(e *entry, _ bool) {
		if e.win == nil {
			e.win = newWindow(a, now)
		}
		e.win.advance(a, now, func(start, end time.Time, b bucket) {
			closed = append(closed, windowClose{a: a, key: key, start: start, end: end, b: b})
		})
		e.win.buckets[e.win.pos].add(v)
	})
	return closed
}

// windowClose is a window of an aggregate action that closed with data.
type windowClose struct {
	a          *aggAction
	key        string
	start, end time.Time
	b          bucket
}

// emitWindow appends the event of a closed window to emits.
func (s *Set) emitWindow(r *runner, rl *rule, c windowClose, gw string, emits []Emitted) []Emitted {
	wenv := WindowEnv{Key: c.key, Count: c.b.n, Sum: c.b.sum, Min: c.b.min, Max: c.b.max,
		Avg: c.b.sum / float64(c.b.n), Start: c.start.UTC(), End: c.end.UTC(), Rule: rl.name, GatewayID: gw}
	em, err := s.buildEmit(r, &c.a.emit, rl.name, wenv, c.key, c.end, gw)
	if err != nil {
		rl.stats.errors.Add(1)
		return emits
	}
	if c.a.emit.data == nil {
		em.Event.Data = map[string]any{
			"key": c.key, "count": float64(c.b.n), "sum": c.b.sum, "min": c.b.min, "max": c.b.max,
			"avg": wenv.Avg, "start": wenv.Start.Format(time.RFC3339Nano), "end": wenv.End.Format(time.RFC3339Nano),
		}
		em.Event.DataContentType = "application/json"
	}
	return append(emits, em)
}

// window is the per-key state of an aggregate action: k buckets of
// `every`, the current one starting at cur.
type window struct {
	cur     time.Time
	buckets []bucket
	pos     int
}

type bucket struct {
	n             int
	sum, min, max float64
}

func (b *bucket) add(v float64) {
	if b.n == 0 || v < b.min {
		b.min = v
	}
	if b.n == 0 || v > b.max {
		b.max = v
	}
	b.n++
	b.sum += v
}

func (b *bucket) merge(o bucket) {
	if o.n == 0 {
		return
	}
	if b.n == 0 || o.min < b.min {
		b.min = o.min
	}
	if b.n == 0 || o.max > b.max {
		b.max = o.max
	}
	b.n += o.n
	b.sum += o.sum
}

func newWindow(a *aggAction, now time.Time) *window {
	return &window{cur: now.Truncate(a.every), buckets: make([]bucket, a.size/a.every)}
}

// advance closes every bucket that ends at or before now and calls closed
// for each window [end-size, end) that saw data. It reports whether the
// window is now empty (the entry may be freed).
func (w *window) advance(a *aggAction, now time.Time, closed func(start, end time.Time, b bucket)) (empty bool) {
	// Windows are aligned to the wall clock (their start and end are in the
	// events), so they follow its steps: a step forward closes the buckets
	// it skipped (below); after a step back the bucket in hand moves to
	// now's, so it closes one every later, not when the clock catches up.
	if now.Before(w.cur) {
		w.cur = now.Truncate(a.every)
	}
	for !now.Before(w.cur.Add(a.every)) {
		end := w.cur.Add(a.every)
		var total bucket
		for _, b := range w.buckets {
			total.merge(b)
		}
		if total.n > 0 {
			closed(end.Add(-a.size), end, total)
		}
		w.pos = (w.pos + 1) % len(w.buckets)
		w.buckets[w.pos] = bucket{}
		w.cur = end
		if w.isEmpty() {
			w.cur = now.Truncate(a.every)
			break
		}
	}
	return w.isEmpty()
}

func (w *window) isEmpty() bool {
	for _, b := range w.buckets {
		if b.n > 0 {
			return false
		}
	}
	return true
}
