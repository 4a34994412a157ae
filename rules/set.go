package rules

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Set is a compiled rule set. It is safe for concurrent use.
type Set struct {
	opts         options
	rules        []*rule
	schemas      map[string]*schemaCheck
	needSegments bool
	slots        *slotTable
	gen          atomic.Uint64 // evaluations, for evalState.gen
	pool         sync.Pool     // *runner
}

// rule is one compiled rule.
type rule struct {
	name    string
	when    *vm.Program // nil: always
	key     *vm.Program // nil: subject
	onError string
	actions []action
	// sites: stateful function calls and aggregate/stale actions, by their
	// descriptor (kind and arguments), which names their state.
	sites map[string]*siteInfo
	state *store // nil unless the rule has sites
	stats *counters
}

// siteInfo is a site's action, for Tick: nil for stateful function calls.
type siteInfo struct {
	agg   *aggAction
	stale *staleAction
}

// counters are one rule's statistics; CarryStateFrom shares them with the
// next Set so they stay monotonic across reloads.
type counters struct {
	evals, matches, errors atomic.Uint64
	nanos                  atomic.Int64
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
