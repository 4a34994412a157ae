package rules

import (
	"fmt"
	"strings"
	"time"
)

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
	e := evaluation{s: s, r: r, now: now, env: Env{
		Topic:     in.Topic,
		ClientID:  in.ClientID,
		GatewayID: gw,
		St:        &r.st,
		V:         r.vals,
	}}
	if s.needSegments && in.Topic != "" {
		e.env.Segments = strings.Split(in.Topic, "/")
	}
	e.see(&d.Event)
	e.gen = s.gen.Add(1)
	var start time.Time
	if timed {
		start = time.Now()
	}
	for _, rl := range s.rules {
		stop := e.rule(rl, &d)
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

// evaluation is one Evaluate call: what its expressions see. Its methods
// decide into d, which is a parameter rather than a field: escape analysis
// does not tell fields apart, so a pointer to Evaluate's result kept next
// to fields that reach the heap (boxed, now) would move the result there.
type evaluation struct {
	s     *Set
	r     *runner
	env   Env
	boxed any // env as the VM runs on it, boxed again whenever the event changes
	now   time.Time
	gen   uint64
}

// see makes ev the event the expressions see.
func (e *evaluation) see(ev *Event) {
	e.env.setEvent(ev)
	e.s.resolve(e.r.vals, ev)
	e.boxed = e.env
}

// rule evaluates one rule; it reports whether evaluation stops.
func (e *evaluation) rule(rl *rule, d *Decision) (stop bool) {
	r := e.r
	rl.stats.evals.Add(1)
	r.st = evalState{rule: rl, now: e.now, gen: e.gen}
	if rl.state != nil {
		if rl.key == nil {
			r.st.key = e.env.Subject
		} else {
			k, err := r.run(rl.key, e.boxed)
			if err != nil {
				return e.fail(rl, d, fmt.Errorf("key: %w", err))
			}
			r.st.key = keyString(k)
		}
	}
	if rl.when != nil {
		out, err := r.run(rl.when, e.boxed)
		if err != nil {
			return e.fail(rl, d, fmt.Errorf("when: %w", err))
		}
		if ok, _ := out.(bool); !ok {
			return false
		}
	}
	rl.stats.matches.Add(1)
	return e.act(rl, d)
}

// fail records a runtime error of rl and applies its on_error behaviour.
func (e *evaluation) fail(rl *rule, d *Decision, err error) (stop bool) {
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

func keyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
