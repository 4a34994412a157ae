package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
)

// patcher rewrites calls of the stateful functions into their hidden
// implementations, adding the evaluation state and a site descriptor, and
// turning duration literals into nanoseconds.
type patcher struct {
	stateful bool
	errs     []string
	sites    []string
	segments bool
	slots    *slotTable // nil: not the event environment
}

type statefulFunc struct {
	min, max int  // user arguments
	durArg   int  // index of the duration literal argument, -1 if none
	nArg     bool // first argument is a positive integer literal
}

var statefulDefs = map[string]statefulFunc{
	"changed":   {min: 1, max: 2, durArg: -1},
	"prev":      {min: 1, max: 1, durArg: -1},
	"duplicate": {min: 2, max: 2, durArg: 1},
	"sample":    {min: 1, max: 1, durArg: 0},
	"limit":     {min: 2, max: 2, durArg: 1, nArg: true},
}

func (pt *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		// a / 0 is +Inf in expr: a rule would silently match (and Inf
		// cannot be encoded as JSON). Make it a runtime error instead.
		if n.Operator == "/" {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: "__div"},
				Arguments: []ast.Node{n.Left, n.Right},
			})
		}
	case *ast.MemberNode:
		pt.member(node, n)
	case *ast.IdentifierNode:
		if strings.HasPrefix(n.Value, "__") {
			pt.errs = append(pt.errs, fmt.Sprintf("unknown name %s", n.Value))
		}
		if n.Value == "segments" {
			pt.segments = true
		}
	case *ast.CallNode:
		pt.call(node, n)
	}
}

// call turns a call of a stateful function into its hidden implementation,
// with the evaluation state and the site descriptor as first arguments and
// a duration literal argument in nanoseconds.
func (pt *patcher) call(node *ast.Node, n *ast.CallNode) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	def, ok := statefulDefs[id.Value]
	if !ok {
		return
	}
	if !pt.stateful {
		pt.errs = append(pt.errs, fmt.Sprintf("%s() keeps state per key and is only allowed in when, key, set, emit, publish and dead_letter expressions", id.Value))
		return
	}
	args := n.Arguments
	if len(args) < def.min || len(args) > def.max {
		pt.errs = append(pt.errs, fmt.Sprintf("%s() takes %s", id.Value, usage[id.Value]))
		return
	}
	var desc strings.Builder
	desc.WriteString(id.Value)
	newArgs := []ast.Node{&ast.IdentifierNode{Value: "__st"}, nil}
	for i, a := range args {
		if i == def.durArg {
			s, ok := a.(*ast.StringNode)
			var d time.Duration
			var err error
			if ok {
				d, err = time.ParseDuration(s.Value)
			}
			if !ok || err != nil || d <= 0 {
				pt.errs = append(pt.errs, fmt.Sprintf("%s(): the window must be a duration in quotes such as '30s' or '5m'", id.Value))
				return
			}
			a = &ast.IntegerNode{Value: int(d)}
			fmt.Fprintf(&desc, "|%s", d)
		} else {
			if def.nArg && i == 0 {
				in, ok := a.(*ast.IntegerNode)
				if !ok || in.Value < 1 {
					pt.errs = append(pt.errs, fmt.Sprintf("%s(): the count must be a positive whole number", id.Value))
					return
				}
			}
			fmt.Fprintf(&desc, "|%s", a.String())
		}
		newArgs = append(newArgs, a)
	}
	if id.Value == "changed" && len(args) == 1 {
		newArgs = append(newArgs, &ast.IntegerNode{Value: 0})
	}
	site := desc.String()
	// Two identical calls in one rule share their state.
	if !slices.Contains(pt.sites, site) {
		pt.sites = append(pt.sites, site)
	}
	newArgs[1] = &ast.StringNode{Value: site}
	call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__" + id.Value}, Arguments: newArgs}
	ast.Patch(node, call)
}

var usage = map[string]string{
	"changed":   "a value and an optional deadband: changed(data.temperature, 0.5)",
	"prev":      "one value: prev(data.temperature)",
	"duplicate": "a value and a window: duplicate(data.seq, '30s')",
	"sample":    "a period: sample('1m')",
	"limit":     "a count and a window: limit(10, '1m')",
}

// member turns data.a.b and ext.a (string properties only) into __v[i].
func (pt *patcher) member(node *ast.Node, n *ast.MemberNode) {
	if pt.slots == nil || n.Method {
		return
	}
	prop, ok := n.Property.(*ast.StringNode)
	if !ok {
		return
	}
	var base []string
	switch inner := n.Node.(type) {
	case *ast.IdentifierNode:
		if inner.Value != "data" && inner.Value != "ext" {
			return
		}
		base = []string{inner.Value}
	case *ast.MemberNode:
		i, ok := slotIndex(inner)
		if !ok {
			return
		}
		base = pt.slots.paths[i]
		pt.slots.refs[i]-- // replaced by the longer path
	default:
		return
	}
	path := append(slices.Clip(base), prop.Value)
	i := pt.slots.slot(path)
	ast.Patch(node, &ast.MemberNode{Node: &ast.IdentifierNode{Value: "__v"}, Property: &ast.IntegerNode{Value: i}})
}

func slotIndex(n *ast.MemberNode) (int, bool) {
	id, ok := n.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "__v" {
		return 0, false
	}
	in, ok := n.Property.(*ast.IntegerNode)
	if !ok {
		return 0, false
	}
	return in.Value, true
}

// slotTable lists the data.x.y and ext.x paths the expressions read. The
// patcher turns each into __v[i], and Evaluate resolves them once per
// event with plain Go map lookups: expr's own map access allocates.
type slotTable struct {
	index map[string]int
	paths [][]string // paths[i][0] is "data" or "ext"
	refs  []int
	used  []int // slots referenced by a compiled expression
}

func (t *slotTable) slot(path []string) int {
	k := strings.Join(path, "\x00")
	i, ok := t.index[k]
	if !ok {
		i = len(t.paths)
		t.index[k] = i
		t.paths = append(t.paths, path)
		t.refs = append(t.refs, 0)
	}
	t.refs[i]++
	return i
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
