package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"
)

// counters are one rule's statistics; CarryStateFrom shares them with the
// next Set so they stay monotonic across reloads.
type counters struct {
	evals, matches, errors atomic.Uint64
	nanos                  atomic.Int64
}

// runner is a pooled VM with its evaluation state.
type runner struct {
	vm   vm.VM
	st   evalState
	vals []any  // resolved data/ext paths
	n    uint32 // evaluations, for sampled timing
}

const timingSample = 16

// run executes prog; vm.Run turns panics (ours included) into errors.
func (r *runner) run(prog *vm.Program, env any) (out any, err error) {
	out, err = r.vm.Run(prog, env)
	if err != nil {
		err = errors.New(exprMessage(err))
	}
	return out, err
}

// Empty reports whether the set has neither rules nor schemas, so the
// gateway can skip decoding data for it.
func (s *Set) Empty() bool { return s == nil || (len(s.rules) == 0 && len(s.schemas) == 0) }

// Rules returns the rule names in evaluation order.
func (s *Set) Rules() []string {
	out := make([]string, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.name
	}
	return out
}

// Evaluate runs the rules, in order, on one event and returns what to do
// with it. now is the processing time (used by stateful functions and
// windows, and as the time of emitted events). It never panics and is safe
// for concurrent use.
//
// Rules see the event as changed by earlier rules' set actions. A drop or
// dead_letter action (or on_error: drop/dead_letter) ends the evaluation.
// When a rule fails at runtime, none of its actions take effect (state
// changes made by stateful functions before the error remain).
func (s *Set) Evaluate(in Input, now time.Time) (d Decision) {
	defer func() {
		if p := recover(); p != nil { // a bug of ours; never crash the pipeline
			d.Errors = append(d.Errors, RuleError{Rule: "(rules)", Err: fmt.Errorf("panic: %v", p)})
		}
	}()
	d.Event = in.Event
	gw := in.GatewayID
	if gw == "" {
		gw = s.opts.gatewayID
	}
	if chk := s.schemas[in.Event.Type]; chk != nil {
		if stop := s.checkSchema(chk, &d); stop {
			return d
		}
	}
	if len(s.rules) == 0 {
		return d
	}
	r := s.pool.Get().(*runner)
	defer s.pool.Put(r)
	r.n++
	timed := r.n%timingSample == 0
	env := Env{
		Topic:     in.Topic,
		ClientID:  in.ClientID,
		GatewayID: gw,
		St:        &r.st,
		V:         r.vals,
	}
	if s.needSegments && in.Topic != "" {
		env.Segments = strings.Split(in.Topic, "/")
	}
	env.setEvent(&d.Event)
	s.resolve(r.vals, &d.Event)
	var boxed any = env
	gen := s.gen.Add(1)
	var start time.Time
	if timed {
		start = time.Now()
	}
	for _, rl := range s.rules {
		stop := s.evalRule(r, rl, &env, &boxed, &d, now, gw, gen)
		if timed {
			t := time.Now()
			rl.stats.nanos.Add(int64(t.Sub(start)) * timingSample)
			start = t
		}
		if stop {
			break
		}
	}
	r.st = evalState{}
	clear(r.vals)
	return d
}

// resolve fills vals with the data/ext paths of the slot table.
func (s *Set) resolve(vals []any, ev *Event) {
	for _, i := range s.slots.used {
		p := s.slots.paths[i]
		var cur any = ev.Data
		if p[0] == "ext" {
			cur = ev.Extensions
		}
		for _, k := range p[1:] {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = m[k]
		}
		vals[i] = cur
	}
}

func (e *Env) setEvent(ev *Event) {
	e.ID = ev.ID
	e.Source = ev.Source
	e.Type = ev.Type
	e.Subject = ev.Subject
	e.Time = ev.Time
	e.DataContentType = ev.DataContentType
	e.Data = ev.Data
	e.Ext = ev.Extensions
}

func (s *Set) checkSchema(chk *schemaCheck, d *Decision) (stop bool) {
	if chk.validate == nil {
		return false
	}
	err := chk.validate(d.Event.Data)
	if err == nil {
		return false
	}
	msg := schemaPrefix.ReplaceAllString(oneLine(err.Error()), "")
	switch chk.onInvalid {
	case OnErrorDrop:
		d.Drop = true
		return true
	case OnInvalidTag:
		ext := maps.Clone(d.Event.Extensions)
		if ext == nil {
			ext = map[string]any{}
		}
		ext["schemaerror"] = msg
		d.Event.Extensions = ext
		d.Changed = true
		return false
	default:
		d.DeadLetter = "schema: " + msg
		return true
	}
}

var schemaPrefix = regexp.MustCompile(`jsonschema validation failed with '[^']*' - `)

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// evalRule evaluates one rule; it reports whether evaluation stops.
func (s *Set) evalRule(r *runner, rl *rule, env *Env, boxed *any, d *Decision, now time.Time, gw string, gen uint64) (stop bool) {
	rl.stats.evals.Add(1)
	r.st = evalState{rule: rl, now: now, gen: gen}
	if rl.state != nil {
		if rl.key == nil {
			r.st.key = env.Subject
		} else {
			k, err := r.run(rl.key, *boxed)
			if err != nil {
				return s.fail(rl, d, fmt.Errorf("key: %w", err))
			}
			r.st.key = keyString(k)
		}
	}
	if rl.when != nil {
		out, err := r.run(rl.when, *boxed)
		if err != nil {
			return s.fail(rl, d, fmt.Errorf("when: %w", err))
		}
		if ok, _ := out.(bool); !ok {
			return false
		}
	}
	rl.stats.matches.Add(1)

	// Apply the actions to a copy; commit it only if every action works.
	ev := d.Event
	changed := false
	nEmits, nPubs := len(d.Emits), len(d.Publishes)
	routes := d.Routes
	var routesOwned bool
	rollback := func(err error) bool {
		d.Emits = d.Emits[:nEmits]
		d.Publishes = d.Publishes[:nPubs]
		d.Routes = routes
		if changed {
			env.setEvent(&d.Event)
			s.resolve(r.vals, &d.Event)
			*boxed = *env
		}
		return s.fail(rl, d, err)
	}
	for i := range rl.actions {
		a := &rl.actions[i]
		switch a.kind {
		case actSet:
			for _, op := range a.sets {
				v, err := r.run(op.prog, *boxed)
				if err != nil {
					return rollback(fmt.Errorf("set %s: %w", op.target, err))
				}
				if err := assign(&ev, op.target, v); err != nil {
					return rollback(fmt.Errorf("set %s: %w", op.target, err))
				}
				changed = true
				env.setEvent(&ev)
				s.resolve(r.vals, &ev)
				*boxed = *env
			}
		case actRemove:
			for _, t := range a.removes {
				unset(&ev, t)
			}
			changed = true
			env.setEvent(&ev)
			s.resolve(r.vals, &ev)
			*boxed = *env
		case actRoute:
			if !routesOwned {
				d.Routes = append([]string(nil), d.Routes...)
				routesOwned = true
			}
			for _, n := range a.routes {
				if !contains(d.Routes, n) {
					d.Routes = append(d.Routes, n)
				}
			}
		case actEmit:
			e, err := s.buildEmit(r, a.emit, rl.name, *boxed, ev.Subject, now, gw)
			if err != nil {
				return rollback(fmt.Errorf("emit %s: %w", a.emit.typ, err))
			}
			d.Emits = append(d.Emits, e)
		case actPublish:
			p, err := buildPublish(r, a.publish, *boxed)
			if err != nil {
				return rollback(fmt.Errorf("publish: %w", err))
			}
			d.Publishes = append(d.Publishes, p)
		case actAggregate:
			v, err := r.run(a.agg.value, *boxed)
			if err != nil {
				return rollback(fmt.Errorf("aggregate value: %w", err))
			}
			f, ok := toFloat(v)
			if !ok {
				return rollback(fmt.Errorf("aggregate value: %v is not a number", v))
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return rollback(fmt.Errorf("aggregate value: %v is not a finite number", f))
			}
			d.Emits = s.aggregate(r, rl, a.agg, r.st.key, f, now, gw, d.Emits)
		case actStale:
			s.touchStale(rl, a.stale, r.st.key, ev.Data, now)
		case actDeadLetter:
			v, err := r.run(a.reason, *boxed)
			if err != nil {
				return rollback(fmt.Errorf("dead_letter: %w", err))
			}
			reason := fmt.Sprint(v)
			if v == nil || reason == "" {
				reason = "rule " + rl.name
			}
			d.DeadLetter = reason
			d.Event, d.Changed = ev, d.Changed || changed
			return true
		case actDrop:
			d.Drop = true
			d.Event, d.Changed = ev, d.Changed || changed
			return true
		}
	}
	d.Event, d.Changed = ev, d.Changed || changed
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// fail records a runtime error of rl and applies its on_error behaviour.
func (s *Set) fail(rl *rule, d *Decision, err error) (stop bool) {
	rl.stats.errors.Add(1)
	d.Errors = append(d.Errors, RuleError{Rule: rl.name, Err: err})
	switch rl.onError {
	case OnErrorDrop:
		d.Drop = true
		return true
	case OnErrorDeadLetter:
		d.DeadLetter = "rule " + rl.name + ": " + err.Error()
		return true
	}
	return false
}

func (t target) String() string {
	switch t.kind {
	case tData:
		if len(t.path) == 0 {
			return "data"
		}
		return "data." + strings.Join(t.path, ".")
	case tType:
		return "type"
	case tSource:
		return "source"
	case tSubject:
		return "subject"
	case tID:
		return "id"
	case tContentType:
		return "datacontenttype"
	case tTime:
		return "time"
	default:
		return "ext." + t.path[0]
	}
}

func assign(ev *Event, t target, v any) error {
	switch t.kind {
	case tData:
		if len(t.path) == 0 {
			ev.Data = v
			if v != nil && ev.DataContentType == "" {
				ev.DataContentType = "application/json"
			}
			return nil
		}
		nd, err := setPath(ev.Data, t.path, v)
		if err != nil {
			return err
		}
		ev.Data = nd
		if ev.DataContentType == "" {
			ev.DataContentType = "application/json"
		}
		return nil
	case tTime:
		tm, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("%v is not a time", v)
		}
		ev.Time = tm
		return nil
	case tExt:
		ext := maps.Clone(ev.Extensions)
		if ext == nil {
			ext = map[string]any{}
		}
		if v == nil {
			delete(ext, t.path[0])
		} else {
			ext[t.path[0]] = v
		}
		ev.Extensions = ext
		return nil
	}
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("%v is not a string", v)
	}
	if str == "" && t.kind != tSubject {
		return errors.New("must not be empty")
	}
	switch t.kind {
	case tType:
		ev.Type = str
	case tSource:
		ev.Source = str
	case tSubject:
		ev.Subject = str
	case tID:
		ev.ID = str
	case tContentType:
		ev.DataContentType = str
	}
	return nil
}

// setPath returns a copy of data with path set to v; the maps along the
// path are copied, so the input is never modified.
func setPath(data any, path []string, v any) (any, error) {
	var m map[string]any
	switch x := data.(type) {
	case nil:
		m = make(map[string]any, 1)
	case map[string]any:
		m = maps.Clone(x)
	default:
		return nil, fmt.Errorf("data is not an object (it is %T)", data)
	}
	if len(path) == 1 {
		m[path[0]] = v
		return m, nil
	}
	child, err := setPath(m[path[0]], path[1:], v)
	if err != nil {
		return nil, err
	}
	m[path[0]] = child
	return m, nil
}

func removePath(data any, path []string) any {
	m, ok := data.(map[string]any)
	if !ok {
		return data
	}
	if _, ok := m[path[0]]; !ok {
		return data
	}
	m = maps.Clone(m)
	if len(path) == 1 {
		delete(m, path[0])
		return m
	}
	m[path[0]] = removePath(m[path[0]], path[1:])
	return m
}

func unset(ev *Event, t target) {
	switch t.kind {
	case tData:
		if len(t.path) == 0 {
			ev.Data = nil
			return
		}
		ev.Data = removePath(ev.Data, t.path)
	case tSubject:
		ev.Subject = ""
	case tContentType:
		ev.DataContentType = ""
	case tExt:
		if _, ok := ev.Extensions[t.path[0]]; ok {
			ext := maps.Clone(ev.Extensions)
			delete(ext, t.path[0])
			ev.Extensions = ext
		}
	}
}

// buildEmit builds an emitted event from an emit action.
func (s *Set) buildEmit(r *runner, ea *emitAction, ruleName string, env any, subject string, now time.Time, gw string) (Emitted, error) {
	e := Event{
		ID:      s.opts.newID(),
		Type:    ea.typ,
		Source:  "/edgegate/" + gw + "/rules/" + ruleName,
		Subject: subject,
		Time:    now.UTC(),
	}
	if ea.source != nil {
		v, err := r.run(ea.source, env)
		if err != nil {
			return Emitted{}, fmt.Errorf("source: %w", err)
		}
		if e.Source, _ = v.(string); e.Source == "" {
			return Emitted{}, errors.New("source: must be a non-empty string")
		}
	}
	if ea.subject != nil {
		v, err := r.run(ea.subject, env)
		if err != nil {
			return Emitted{}, fmt.Errorf("subject: %w", err)
		}
		e.Subject, _ = v.(string)
	}
	if ea.data != nil {
		v, err := r.run(ea.data, env)
		if err != nil {
			return Emitted{}, fmt.Errorf("data: %w", err)
		}
		e.Data = v
	}
	if e.Data != nil {
		e.DataContentType = "application/json"
	}
	return Emitted{Event: e, Routes: ea.routes}, nil
}

func buildPublish(r *runner, pa *publishAction, env any) (Publish, error) {
	v, err := r.run(pa.topic, env)
	if err != nil {
		return Publish{}, fmt.Errorf("topic: %w", err)
	}
	topic, _ := v.(string)
	if topic == "" || strings.ContainsAny(topic, "+#\x00") {
		return Publish{}, fmt.Errorf("topic: %q is not a topic name (non-empty, no + or #)", topic)
	}
	p := Publish{Topic: topic, QoS: pa.qos, Retain: pa.retain}
	if pa.payload != nil {
		v, err := r.run(pa.payload, env)
		if err != nil {
			return Publish{}, fmt.Errorf("payload: %w", err)
		}
		switch x := v.(type) {
		case string:
			p.Payload = []byte(x)
		case []byte:
			p.Payload = x
		case nil:
		default:
			b, err := json.Marshal(x)
			if err != nil {
				return Publish{}, fmt.Errorf("payload: %w", err)
			}
			p.Payload = b
		}
	}
	return p, nil
}

// aggregate adds v to the key's window, first closing windows that ended.
func (s *Set) aggregate(r *runner, rl *rule, a *aggAction, key string, v float64, now time.Time, gw string, emits []Emitted) []Emitted {
	st := rl.state
	k := stateKey{site: a.site, key: key}
	st.mu.Lock()
	e := st.get(k, now)
	if e == nil || e.win == nil {
		e = st.put(k)
		e.win = newWindow(a, now)
	}
	var closed []windowClose
	e.win.advance(a, now, func(start, end time.Time, b bucket) {
		closed = append(closed, windowClose{key: key, start: start, end: end, b: b})
	})
	e.win.buckets[e.win.pos].add(v)
	st.mu.Unlock()
	for _, c := range closed {
		emits = s.emitWindow(r, rl, a, c, gw, emits)
	}
	return emits
}

type windowClose struct {
	key        string
	start, end time.Time
	b          bucket
}

func (s *Set) emitWindow(r *runner, rl *rule, a *aggAction, c windowClose, gw string, emits []Emitted) []Emitted {
	wenv := WindowEnv{Key: c.key, Count: c.b.n, Sum: c.b.sum, Min: c.b.min, Max: c.b.max,
		Avg: c.b.sum / float64(c.b.n), Start: c.start.UTC(), End: c.end.UTC(), Rule: rl.name, GatewayID: gw}
	em, err := s.buildEmit(r, &a.emit, rl.name, wenv, c.key, c.end, gw)
	if err != nil {
		rl.stats.errors.Add(1)
		return emits
	}
	if a.emit.data == nil {
		em.Event.Data = map[string]any{
			"key": c.key, "count": float64(c.b.n), "sum": c.b.sum, "min": c.b.min, "max": c.b.max,
			"avg": wenv.Avg, "start": wenv.Start.Format(time.RFC3339Nano), "end": wenv.End.Format(time.RFC3339Nano),
		}
		em.Event.DataContentType = "application/json"
	}
	return append(emits, em)
}

func (s *Set) touchStale(rl *rule, a *staleAction, key string, data any, now time.Time) {
	st := rl.state
	k := stateKey{site: a.site, key: key}
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.get(k, now)
	if e == nil || e.stale == nil {
		e = st.put(k)
		e.stale = &staleState{}
	}
	e.stale.last, e.stale.data, e.stale.reported = now, data, false
}

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

type staleReport struct {
	a    *staleAction
	key  string
	last time.Time
	data any
}

func (s *Set) tickRule(r *runner, rl *rule, now time.Time, gw string, out []Emitted) []Emitted {
	st := rl.state
	var closed []windowClose
	var closedAgg []*aggAction
	var stale []staleReport
	st.mu.Lock()
	// Oldest first, so output order is stable.
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
				closed = append(closed, windowClose{key: e.k.key, start: start, end: end, b: b})
				closedAgg = append(closedAgg, a)
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
	st.mu.Unlock()
	for i, c := range closed {
		out = s.emitWindow(r, rl, closedAgg[i], c, gw, out)
	}
	for _, sr := range stale {
		senv := StaleEnv{Key: sr.key, LastSeen: sr.last.UTC(), SilentFor: now.Sub(sr.last).Seconds(),
			Data: sr.data, Rule: rl.name, GatewayID: gw}
		em, err := s.buildEmit(r, &sr.a.emit, rl.name, senv, sr.key, now, gw)
		if err != nil {
			rl.stats.errors.Add(1)
			continue
		}
		if sr.a.emit.data == nil {
			em.Event.Data = map[string]any{
				"key": sr.key, "last_seen": senv.LastSeen.Format(time.RFC3339Nano), "silent_for": senv.SilentFor,
			}
			em.Event.DataContentType = "application/json"
		}
		out = append(out, em)
	}
	return out
}

// CarryStateFrom takes over, for every rule with the same name in old,
// its state (deadband references, dedupe and sample memories, open
// windows, stale watches) and its statistics. State of a stateful call or
// action whose arguments changed is not reused and ages out. The two sets
// then share that state, so events still being evaluated by old during a
// reload are not lost; stop calling old.Tick once s is in use. State lives
// in memory only: it does not survive a restart.
func (s *Set) CarryStateFrom(old *Set) {
	if old == nil || old == s {
		return
	}
	prev := map[string]*rule{}
	for _, r := range old.rules {
		prev[r.name] = r
	}
	for _, r := range s.rules {
		o := prev[r.name]
		if o == nil {
			continue
		}
		o.stats.evals.Add(r.stats.evals.Load())
		o.stats.matches.Add(r.stats.matches.Load())
		o.stats.errors.Add(r.stats.errors.Load())
		o.stats.nanos.Add(r.stats.nanos.Load())
		r.stats = o.stats
		if r.state != nil && o.state != nil {
			o.state.mu.Lock()
			o.state.max = r.state.max
			for len(o.state.m) > o.state.max {
				o.state.remove(o.state.root.prev)
			}
			o.state.mu.Unlock()
			r.state = o.state
		}
	}
}

// Stats returns each rule's counters, in evaluation order.
func (s *Set) Stats() []RuleStats {
	out := make([]RuleStats, len(s.rules))
	for i, r := range s.rules {
		out[i] = RuleStats{
			Name:        r.name,
			Evaluations: r.stats.evals.Load(),
			Matches:     r.stats.matches.Load(),
			Errors:      r.stats.errors.Load(),
			Time:        time.Duration(r.stats.nanos.Load()),
		}
	}
	return out
}
