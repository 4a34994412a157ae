package rules

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/expr-lang/expr"
)

// stateKey names one piece of state of a rule: the site (a stateful call
// or action, by kind and arguments), the key (device) and, for
// duplicate(), the value.
type stateKey struct {
	site string
	key  string
	val  string
}

// entry is one piece of state, on the store's LRU list.
type entry struct {
	k          stateKey
	prev, next *entry
	exp        time.Time // zero: expires only by LRU

	v     any       // changed, prev: last value
	t     time.Time // sample: last pass; limit: window start
	n     int       // limit: count in window
	win   *window
	stale *staleState

	// gen and res make identical calls within one evaluation agree: the
	// second returns what the first did.
	gen uint64
	res any
}

// store is the bounded state of one rule: an LRU of at most max entries.
type store struct {
	mu   sync.Mutex
	max  int
	m    map[stateKey]*entry
	root entry // sentinel: root.next is the most recent
}

func newStore(max int) *store {
	s := &store{max: max, m: map[stateKey]*entry{}}
	s.root.next, s.root.prev = &s.root, &s.root
	return s
}

func (s *store) unlink(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *store) pushFront(e *entry) {
	e.prev = &s.root
	e.next = s.root.next
	s.root.next.prev = e
	s.root.next = e
}

// get returns the live entry for k, refreshed as most recent, or nil.
func (s *store) get(k stateKey, now time.Time) *entry {
	e := s.m[k]
	if e == nil {
		return nil
	}
	if !e.exp.IsZero() && !now.Before(e.exp) {
		s.remove(e)
		return nil
	}
	s.unlink(e)
	s.pushFront(e)
	return e
}

// put creates the entry for k, evicting the least recently used entry
// beyond the cap. Callers use get first.
func (s *store) put(k stateKey) *entry {
	e := &entry{k: k}
	s.m[k] = e
	s.pushFront(e)
	for len(s.m) > s.max {
		s.remove(s.root.prev)
	}
	return e
}

// update runs f on k's live entry under the lock; fresh says that the
// entry was just created (there was none, or it had expired). The aggregate
// and stale actions change their state through it; stateful calls go
// through evalState.call, which also answers repeated calls.
func (s *store) update(k stateKey, now time.Time, f func(e *entry, fresh bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(k, now)
	fresh := e == nil
	if fresh {
		e = s.put(k)
	}
	f(e, fresh)
}

func (s *store) remove(e *entry) {
	delete(s.m, e.k)
	s.unlink(e)
}

// Len returns the number of entries (tests).
func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// evalState is the per-evaluation context the stateful functions see.
type evalState struct {
	rule *rule
	key  string
	now  time.Time
	gen  uint64 // unique per Evaluate
}

// again returns the result of an identical call earlier in the same
// evaluation, if any.
func (st *evalState) again(e *entry) (any, bool) {
	if e != nil && e.gen == st.gen {
		return e.res, true
	}
	return nil, false
}

func (st *evalState) remember(e *entry, res any) (any, error) {
	e.gen, e.res = st.gen, res
	return res, nil
}

// call runs one stateful call under the rule's state lock: f gets k's live
// entry, fresh if it was just created (none, or expired), and returns the
// call's result. A second identical call in the same evaluation returns the
// first one's result without running f.
func (st *evalState) call(k stateKey, f func(e *entry, fresh bool) any) (any, error) {
	s := st.rule.state
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.get(k, st.now)
	if res, ok := st.again(e); ok {
		return res, nil
	}
	fresh := e == nil
	if fresh {
		e = s.put(k)
	}
	return st.remember(e, f(e, fresh))
}

var errNoState = errors.New("stateful function outside a rule")

func stateOf(params []any) (*evalState, string, error) {
	st, _ := params[0].(*evalState)
	site, _ := params[1].(string)
	if st == nil || st.rule == nil || st.rule.state == nil {
		return nil, "", errNoState
	}
	return st, site, nil
}

// The hidden implementations of the stateful functions. The patcher turns
// changed(v, by) into __changed(__st, "site", v, by).
var statefulFuncs = []expr.Option{
	expr.Function("__changed", fnChanged, new(func(*evalState, string, any, any) bool)),
	expr.Function("__prev", fnPrev, new(func(*evalState, string, any) any)),
	expr.Function("__duplicate", fnDuplicate, new(func(*evalState, string, any, int) bool)),
	expr.Function("__sample", fnSample, new(func(*evalState, string, int) bool)),
	expr.Function("__limit", fnLimit, new(func(*evalState, string, int, int) bool)),
}

// changed(v, by): true for the first value of a key and whenever v differs
// from the last value that passed by more than by (numbers) or at all
// (other values); that value then becomes the reference.
func fnChanged(params ...any) (any, error) {
	st, site, err := stateOf(params)
	if err != nil {
		return nil, err
	}
	v := params[2]
	by, ok := toFloat(params[3])
	if !ok || by < 0 {
		return nil, fmt.Errorf("changed(): the deadband must be a number ≥ 0, got %v", params[3])
	}
	return st.call(stateKey{site: site, key: st.key}, func(e *entry, fresh bool) any {
		if fresh || differs(e.v, v, by) {
			e.v = v
			return true
		}
		return false
	})
}

func differs(old, v any, by float64) bool {
	of, ok1 := toFloat(old)
	nf, ok2 := toFloat(v)
	if ok1 && ok2 {
		return math.Abs(nf-of) > by || (by == 0 && nf != of)
	}
	return !equalValues(old, v)
}

func equalValues(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// prev(v): the value v had at the key's previous evaluation (nil the
// first time); remembers v.
func fnPrev(params ...any) (any, error) {
	st, site, err := stateOf(params)
	if err != nil {
		return nil, err
	}
	v := params[2]
	return st.call(stateKey{site: site, key: st.key}, func(e *entry, _ bool) any {
		old := e.v // nil in a fresh entry
		e.v = v
		return old
	})
}

// duplicate(v, window): true when the key saw the same v within window
// (counted from the first sighting).
func fnDuplicate(params ...any) (any, error) {
	st, site, err := stateOf(params)
	if err != nil {
		return nil, err
	}
	k := stateKey{site: site, key: st.key, val: valueKey(params[2])}
	return st.windowed(k, time.Duration(params[3].(int)), true)
}

// windowed is the shape of duplicate and sample: a key's entry lives for
// window from its first sighting; while it lives the result is seen, when
// it is (re)created the result is !seen. A second call in the same
// evaluation returns the first one's result.
func (st *evalState) windowed(k stateKey, window time.Duration, seen bool) (any, error) {
	return st.call(k, func(e *entry, fresh bool) any {
		if !fresh {
			return seen
		}
		e.exp = st.now.Add(window)
		return !seen
	})
}

func valueKey(v any) string {
	switch x := v.(type) {
	case string:
		return "s" + x
	case float64:
		return "f" + strconv.FormatFloat(x, 'g', -1, 64)
	case int:
		return "f" + strconv.Itoa(x)
	}
	return fmt.Sprintf("v%v", v)
}

// sample(period): true for the first event of a key and then for the first
// event at least period after the last one that passed.
func fnSample(params ...any) (any, error) {
	st, site, err := stateOf(params)
	if err != nil {
		return nil, err
	}
	return st.windowed(stateKey{site: site, key: st.key}, time.Duration(params[2].(int)), false)
}

// limit(n, window): true for at most n events of a key per fixed window
// that starts with the first event.
func fnLimit(params ...any) (any, error) {
	st, site, err := stateOf(params)
	if err != nil {
		return nil, err
	}
	n := params[2].(int)
	window := time.Duration(params[3].(int))
	return st.call(stateKey{site: site, key: st.key}, func(e *entry, fresh bool) any {
		if fresh {
			e.exp = st.now.Add(window)
		}
		if e.n >= n {
			return false
		}
		e.n++
		return true
	})
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float32:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}
