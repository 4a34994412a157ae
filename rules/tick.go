package rules

import "time"

// Tick closes the windows that ended by now and reports keys that went
// stale, returning the events to emit. The gateway calls it from a ticker
// (every second is fine); it is safe to call concurrently with Evaluate.
// It also frees expired state.
func (s *Set) Tick(now time.Time) []Emitted {
	var out []Emitted
	r := s.pool.Get().(*runner)
	defer s.pool.Put(r)
	gw := s.opts.gatewayID
	for _, rl := range s.rules {
		if rl.state == nil {
			continue
		}
		out = s.tickRule(r, rl, now, gw, out)
	}
	return out
}

// tickRule emits rl's windows that ended by now and its keys that went
// stale.
func (s *Set) tickRule(r *runner, rl *rule, now time.Time, gw string, out []Emitted) []Emitted {
	closed, stale := rl.due(now)
	for _, c := range closed {
		out = s.emitWindow(r, rl, c, gw, out)
	}
	for _, sr := range stale {
		out = s.emitStale(r, rl, sr, now, gw, out)
	}
	return out
}

// due walks rl's state, oldest first so that output order is stable: it
// frees expired entries and those of actions gone since a reload, closes
// the windows that ended by now and reports the keys that went stale.
func (rl *rule) due(now time.Time) (closed []windowClose, stale []staleReport) {
	st := rl.state
	st.mu.Lock()
	defer st.mu.Unlock()
	for e := st.root.prev; e != &st.root; {
		prev := e.prev
		if !e.exp.IsZero() && !now.Before(e.exp) {
			st.remove(e)
			e = prev
			continue
		}
		site := rl.sites[e.k.site]
		switch {
		case e.win != nil:
			if site == nil || site.agg == nil {
				st.remove(e) // the action is gone since a reload
				break
			}
			a := site.agg
			empty := e.win.advance(a, now, func(start, end time.Time, b bucket) {
				closed = append(closed, windowClose{a: a, key: e.k.key, start: start, end: end, b: b})
			})
			if empty {
				st.remove(e)
			}
		case e.stale != nil:
			if site == nil || site.stale == nil {
				st.remove(e)
				break
			}
			if !e.stale.reported && now.Sub(e.stale.last) >= site.stale.after {
				e.stale.reported = true
				stale = append(stale, staleReport{a: site.stale, key: e.k.key, last: e.stale.last, data: e.stale.data})
			}
		}
		e = prev
	}
	return closed, stale
}
