package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/vm"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

type actionKind int

const (
	actSet actionKind = iota
	actRemove
	actEmit
	actPublish
	actRoute
	actDeadLetter
	actDrop
	actAggregate
	actStale
)

// action is one compiled action; kind says which of its fields is set.
type action struct {
	kind    actionKind
	sets    []setOp
	removes []target
	emit    *emitAction
	publish *publishAction
	routes  []string
	reason  *vm.Program
	agg     *aggAction
	stale   *staleAction
}

type setOp struct {
	target target
	prog   *vm.Program
}

// action compiles one action; ok is false unless it has exactly one kind.
func (c *compiler) action(p yamlconf.Path, idx int, a Action, uplinks []string) (action, bool) {
	n := 0
	var out action
	if a.Set != nil {
		n++
		out.kind = actSet
		out.sets = c.sets(p.Key("set"), a.Set)
	}
	if a.Remove != nil {
		n++
		out.kind = actRemove
		out.removes = c.removes(p, a.Remove)
	}
	if a.Emit != nil {
		n++
		out.kind = actEmit
		out.emit = c.emit(p.Key("emit"), *a.Emit, uplinks, Env{})
	}
	if a.Publish != nil {
		n++
		out.kind = actPublish
		out.publish = c.publish(p.Key("publish"), *a.Publish)
	}
	if a.Route != nil {
		n++
		out.kind = actRoute
		out.routes = c.routes(p.Key("route"), a.Route, uplinks)
		if len(a.Route) == 0 {
			c.errs.Add(p.Key("route"), "name at least one uplink (use drop to send the event nowhere)")
		}
	}
	if a.DeadLetter != "" {
		n++
		out.kind = actDeadLetter
		out.reason = c.prog(p.Key("dead_letter"), a.DeadLetter, true)
	}
	if a.Drop != nil {
		n++
		out.kind = actDrop
		if !*a.Drop {
			c.errs.Add(p.Key("drop"), "drop: false does nothing; remove the action")
		}
	}
	if a.Aggregate != nil {
		n++
		out.kind = actAggregate
		out.agg = c.aggregate(p.Key("aggregate"), idx, *a.Aggregate, uplinks)
	}
	if a.Stale != nil {
		n++
		out.kind = actStale
		out.stale = c.stale(p.Key("stale"), idx, *a.Stale, uplinks)
	}
	switch {
	case n == 0:
		c.errs.Add(p, "empty action: use one of set, remove, emit, publish, route, dead_letter, drop, aggregate, stale")
		return out, false
	case n > 1:
		c.errs.Add(p, "an action has exactly one of set, remove, emit, publish, route, dead_letter, drop, aggregate, stale; split it into several list items")
		return out, false
	}
	return out, true
}

// sets compiles the assignments of a set action; p is its path.
func (c *compiler) sets(p yamlconf.Path, set Assignments) []setOp {
	if len(set) == 0 {
		c.errs.Add(p, "needs at least one target: expression")
	}
	var out []setOp
	for _, as := range set {
		tp := p.Key(as.Target)
		t, err := parseTarget(as.Target, true)
		if err != nil {
			c.errs.Add(tp, "%v", err)
			continue
		}
		out = append(out, setOp{target: t, prog: c.prog(tp, as.Expr, true)})
	}
	return out
}

// removes parses the targets of a remove action; p is the action's path.
func (c *compiler) removes(p yamlconf.Path, remove []string) []target {
	var out []target
	for i, r := range remove {
		t, err := parseTarget(r, false)
		if err != nil {
			c.errs.Add(p.Key("remove").Index(i), "%v", err)
			continue
		}
		out = append(out, t)
	}
	return out
}

func (c *compiler) routes(p yamlconf.Path, names []string, uplinks []string) []string {
	var out []string
	for i, n := range names {
		if uplinks != nil && !slices.Contains(uplinks, n) {
			c.errs.Add(p.Index(i), "unknown uplink %q (uplinks: %s)", n, strings.Join(uplinks, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// ruleWork is a matching rule's actions in progress. They change a copy of
// the event and append to the Decision; if one fails, rollback restores
// the Decision as it was before the rule.
type ruleWork struct {
	ev            Event
	changed       bool
	nEmits, nPubs int      // lengths of d.Emits and d.Publishes before the rule
	routes        []string // d.Routes before the rule
	routesOwned   bool     // d.Routes is the rule's own copy
}

// act runs a matching rule's actions in order on a copy of the event and
// commits it only if every action works. It reports whether evaluation
// stops.
func (e *evaluation) act(rl *rule, d *Decision) (stop bool) {
	w := ruleWork{ev: d.Event, nEmits: len(d.Emits), nPubs: len(d.Publishes), routes: d.Routes}
	for i := range rl.actions {
		var err error
		if stop, err = e.apply(rl, &rl.actions[i], &w, d); err != nil {
			return e.rollback(rl, &w, d, err)
		}
		if stop {
			break
		}
	}
	d.Event, d.Changed = w.ev, d.Changed || w.changed
	return stop
}

// apply runs one action. It reports whether evaluation stops (drop,
// dead_letter), or the error that fails the rule.
func (e *evaluation) apply(rl *rule, a *action, w *ruleWork, d *Decision) (stop bool, err error) {
	r := e.r
	switch a.kind {
	case actSet:
		for _, op := range a.sets {
			v, err := r.run(op.prog, e.boxed)
			if err == nil {
				err = assign(&w.ev, op.target, v)
			}
			if err != nil {
				return false, fmt.Errorf("set %s: %w", op.target, err)
			}
			w.changed = true
			e.see(&w.ev)
		}
	case actRemove:
		for _, t := range a.removes {
			unset(&w.ev, t)
		}
		w.changed = true
		e.see(&w.ev)
	case actRoute:
		w.route(d, a.routes)
	case actEmit:
		em, err := e.s.buildEmit(r, a.emit, rl.name, e.boxed, w.ev.Subject, e.now, e.env.GatewayID)
		if err != nil {
			return false, fmt.Errorf("emit %s: %w", a.emit.typ, err)
		}
		d.Emits = append(d.Emits, em)
	case actPublish:
		p, err := buildPublish(r, a.publish, e.boxed)
		if err != nil {
			return false, fmt.Errorf("publish: %w", err)
		}
		d.Publishes = append(d.Publishes, p)
	case actAggregate:
		return false, e.aggregate(rl, a.agg, d)
	case actStale:
		rl.touchStale(a.stale, r.st.key, w.ev.Data, e.now)
	case actDeadLetter:
		v, err := r.run(a.reason, e.boxed)
		if err != nil {
			return false, fmt.Errorf("dead_letter: %w", err)
		}
		reason := fmt.Sprint(v)
		if v == nil || reason == "" {
			reason = "rule " + rl.name
		}
		d.DeadLetter = reason
		return true, nil
	case actDrop:
		d.Drop = true
		return true, nil
	}
	return false, nil
}

// route adds names to d.Routes, first copying the routes of earlier rules
// so that a rollback can restore them.
func (w *ruleWork) route(d *Decision, names []string) {
	if !w.routesOwned {
		d.Routes = append([]string(nil), d.Routes...)
		w.routesOwned = true
	}
	for _, n := range names {
		if !slices.Contains(d.Routes, n) {
			d.Routes = append(d.Routes, n)
		}
	}
}

// rollback undoes a failed rule's actions and applies its on_error.
func (e *evaluation) rollback(rl *rule, w *ruleWork, d *Decision, err error) (stop bool) {
	d.Emits = d.Emits[:w.nEmits]
	d.Publishes = d.Publishes[:w.nPubs]
	d.Routes = w.routes
	if w.changed {
		e.see(&d.Event)
	}
	return e.fail(rl, d, err)
}
