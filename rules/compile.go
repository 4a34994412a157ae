package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/google/uuid"

	"github.com/edgegate/edgegate/cloudevent"
)

// Bounds on expressions. A condition or value may have at most MaxNodes
// syntax nodes, and one run may allocate at most MemoryBudget units of
// expr's memory accounting (ranges, maps, arrays, closures' scopes); over
// that, the run stops with an error counted for the rule.
const (
	MaxNodes     = 1000
	MemoryBudget = 100_000
)

// Option changes how Compile builds a Set.
type Option func(*options)

type options struct {
	gatewayID string
	newID     func() string
}

// WithGatewayID sets the gateway id seen by expressions (gateway_id) when
// Input.GatewayID is empty, and used in the default source of emitted
// events.
func WithGatewayID(id string) Option { return func(o *options) { o.gatewayID = id } }

// WithIDGenerator replaces the ids of emitted events (default: UUIDv7).
// Tests use it for stable output. f must be safe for concurrent use.
func WithIDGenerator(f func() string) Option { return func(o *options) { o.newID = f } }

func newUUIDv7() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

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

type siteInfo struct {
	agg   *aggAction
	stale *staleAction
}

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

type targetKind int

const (
	tData targetKind = iota
	tType
	tSource
	tSubject
	tID
	tContentType
	tTime
	tExt
)

type target struct {
	kind targetKind
	path []string // data path or ext name
}

type emitAction struct {
	typ     string
	source  *vm.Program
	subject *vm.Program
	data    *vm.Program
	routes  []string
}

type publishAction struct {
	topic   *vm.Program
	payload *vm.Program
	qos     byte
	retain  bool
}

type aggAction struct {
	site  string
	value *vm.Program
	every time.Duration
	size  time.Duration
	emit  emitAction
}

type staleAction struct {
	site  string
	after time.Duration
	emit  emitAction
}

// Compile checks cfg and compiles every expression. uplinks are the names
// route actions may use; nil skips that check (Config.Validate). The error
// joins every problem, each "rules[i].field: problem".
func Compile(cfg Config, uplinks []string, opts ...Option) (*Set, error) {
	s := &Set{schemas: map[string]*schemaCheck{}, slots: &slotTable{index: map[string]int{}}}
	s.opts.newID = newUUIDv7
	for _, o := range opts {
		o(&s.opts)
	}
	var errs errList
	if cfg.MaxKeys < 0 || cfg.MaxKeys > maxMaxKeys {
		errs.add(pathErr("max_keys", "must be between 1 and %d (0: %d)", maxMaxKeys, DefaultMaxKeys))
	}
	for i, sc := range cfg.Schemas {
		p := fmt.Sprintf("schemas[%d]", i)
		chk, err := compileSchema(p, sc)
		if err != nil {
			errs.add(err)
			continue
		}
		if _, dup := s.schemas[sc.Type]; dup {
			errs.add(pathErr(p+".type", "%q already has a schema", sc.Type))
		}
		s.schemas[sc.Type] = chk
	}
	names := map[string]int{}
	for i, r := range cfg.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		if j, dup := names[r.Name]; dup && r.Name != "" {
			errs.add(pathErr(p+".name", "%q is already used by rules[%d]", r.Name, j))
		}
		names[r.Name] = i
		cr, err := s.compileRule(p, r, uplinks, cfg.maxKeys())
		errs.add(err)
		if cr != nil {
			s.rules = append(s.rules, cr)
		}
	}
	for i, t := range cfg.Tests {
		errs.add(t.validate(fmt.Sprintf("tests[%d]", i)))
	}
	if err := errs.join(); err != nil {
		return nil, err
	}
	for i, n := range s.slots.refs {
		if n > 0 {
			s.slots.used = append(s.slots.used, i)
		}
	}
	nslots := len(s.slots.paths)
	s.pool.New = func() any {
		r := &runner{vals: make([]any, nslots)}
		r.vm.MemoryBudget = MemoryBudget
		return r
	}
	return s, nil
}

// compiler compiles the expressions of one rule and collects its errors.
type compiler struct {
	errs  errList
	sites map[string]*siteInfo
	segs  *bool
	slots *slotTable
}

func (s *Set) compileRule(p string, r Rule, uplinks []string, maxKeys int) (*rule, error) {
	c := &compiler{sites: map[string]*siteInfo{}, segs: &s.needSegments, slots: s.slots}
	cr := &rule{name: r.Name, onError: r.OnError, stats: &counters{}}
	if r.Name == "" {
		c.errs.add(pathErr(p+".name", "is required"))
	} else if !namePattern.MatchString(r.Name) {
		c.errs.add(pathErr(p+".name", "%q must be 1-64 letters, digits, '.', '_' or '-'", r.Name))
	}
	switch r.OnError {
	case "":
		cr.onError = OnErrorSkip
	case OnErrorSkip, OnErrorDrop, OnErrorDeadLetter:
	default:
		c.errs.add(pathErr(p+".on_error", "must be skip, drop or dead_letter, got %q", r.OnError))
	}
	if strings.TrimSpace(r.When) != "" {
		cr.when = c.prog(p+".when", r.When, true, expr.AsBool())
	}
	if k := strings.TrimSpace(r.Key); k != "" && k != "subject" {
		cr.key = c.prog(p+".key", r.Key, true)
	}
	if len(r.Actions) == 0 {
		c.errs.add(pathErr(p+".actions", "at least one action is required"))
	}
	for i, a := range r.Actions {
		ap := fmt.Sprintf("%s.actions[%d]", p, i)
		ca, ok := c.action(ap, i, a, uplinks)
		if ok {
			cr.actions = append(cr.actions, ca)
		}
	}
	if len(c.sites) > 0 {
		cr.sites = c.sites
		cr.state = newStore(maxKeys)
	}
	if len(c.errs) > 0 {
		return nil, c.errs.join()
	}
	return cr, nil
}

func (c *compiler) action(p string, idx int, a Action, uplinks []string) (action, bool) {
	n := 0
	var out action
	if a.Set != nil {
		n++
		out.kind = actSet
		if len(a.Set) == 0 {
			c.errs.add(pathErr(p+".set", "needs at least one target: expression"))
		}
		for _, as := range a.Set {
			tp := p + ".set." + as.Target
			t, err := parseTarget(as.Target, true)
			if err != nil {
				c.errs.add(pathErr(tp, "%v", err))
				continue
			}
			out.sets = append(out.sets, setOp{target: t, prog: c.prog(tp, as.Expr, true)})
		}
	}
	if a.Remove != nil {
		n++
		out.kind = actRemove
		for i, r := range a.Remove {
			t, err := parseTarget(r, false)
			if err != nil {
				c.errs.add(pathErr(fmt.Sprintf("%s.remove[%d]", p, i), "%v", err))
				continue
			}
			out.removes = append(out.removes, t)
		}
	}
	if a.Emit != nil {
		n++
		out.kind = actEmit
		out.emit = c.emit(p+".emit", *a.Emit, uplinks, Env{})
	}
	if a.Publish != nil {
		n++
		out.kind = actPublish
		out.publish = c.publish(p+".publish", *a.Publish)
	}
	if a.Route != nil {
		n++
		out.kind = actRoute
		out.routes = c.routes(p+".route", a.Route, uplinks)
		if len(a.Route) == 0 {
			c.errs.add(pathErr(p+".route", "name at least one uplink (use drop to send the event nowhere)"))
		}
	}
	if a.DeadLetter != "" {
		n++
		out.kind = actDeadLetter
		out.reason = c.prog(p+".dead_letter", a.DeadLetter, true)
	}
	if a.Drop != nil {
		n++
		out.kind = actDrop
		if !*a.Drop {
			c.errs.add(pathErr(p+".drop", "drop: false does nothing; remove the action"))
		}
	}
	if a.Aggregate != nil {
		n++
		out.kind = actAggregate
		out.agg = c.aggregate(p+".aggregate", idx, *a.Aggregate, uplinks)
	}
	if a.Stale != nil {
		n++
		out.kind = actStale
		out.stale = c.stale(p+".stale", idx, *a.Stale, uplinks)
	}
	switch {
	case n == 0:
		c.errs.add(pathErr(p, "empty action: use one of set, remove, emit, publish, route, dead_letter, drop, aggregate, stale"))
		return out, false
	case n > 1:
		c.errs.add(pathErr(p, "an action has exactly one of set, remove, emit, publish, route, dead_letter, drop, aggregate, stale; split it into several list items"))
		return out, false
	}
	return out, true
}

func (c *compiler) routes(p string, names []string, uplinks []string) []string {
	var out []string
	for i, n := range names {
		if uplinks != nil && !slices.Contains(uplinks, n) {
			c.errs.add(pathErr(fmt.Sprintf("%s[%d]", p, i), "unknown uplink %q (uplinks: %s)", n, strings.Join(uplinks, ", ")))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

var typePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$`)

func (c *compiler) emit(p string, e EmitSpec, uplinks []string, env any) *emitAction {
	out := &emitAction{typ: e.Type}
	if e.Type == "" {
		c.errs.add(pathErr(p+".type", "is required (a plain name such as io.acme.alert.overheat)"))
	} else if !typePattern.MatchString(e.Type) {
		c.errs.add(pathErr(p+".type", "%q is not a valid event type (a plain name, not an expression)", e.Type))
	}
	stateful := false
	if _, ok := env.(Env); ok {
		stateful = true
	}
	opt := expr.Env(env)
	if e.Source != "" {
		out.source = c.progEnv(p+".source", e.Source, stateful, opt, expr.AsKind(reflect.String))
	}
	if e.Subject != "" {
		out.subject = c.progEnv(p+".subject", e.Subject, stateful, opt, expr.AsKind(reflect.String))
	}
	if e.Data != "" {
		out.data = c.progEnv(p+".data", e.Data, stateful, opt)
	}
	out.routes = c.routes(p+".route", e.Route, uplinks)
	return out
}

func (c *compiler) publish(p string, pb PublishSpec) *publishAction {
	out := &publishAction{retain: pb.Retain}
	if pb.Topic == "" {
		c.errs.add(pathErr(p+".topic", "is required (an expression, e.g. \"'devices/' + subject + '/cmd'\")"))
	} else {
		out.topic = c.prog(p+".topic", pb.Topic, true, expr.AsKind(reflect.String))
	}
	if pb.Payload != "" {
		out.payload = c.prog(p+".payload", pb.Payload, true)
	}
	if pb.QoS < 0 || pb.QoS > 2 {
		c.errs.add(pathErr(p+".qos", "must be 0, 1 or 2"))
	}
	out.qos = byte(pb.QoS)
	return out
}

func (c *compiler) aggregate(p string, idx int, a AggregateSpec, uplinks []string) *aggAction {
	out := &aggAction{every: a.Every, size: a.Size}
	if a.Value == "" {
		c.errs.add(pathErr(p+".value", "is required (a number expression, e.g. data.temperature)"))
	} else {
		out.value = c.prog(p+".value", a.Value, false)
	}
	if a.Every < time.Second {
		c.errs.add(pathErr(p+".every", "must be at least 1s"))
	}
	if out.size == 0 {
		out.size = a.Every
	}
	if a.Every > 0 && (out.size < a.Every || out.size%a.Every != 0 || out.size/a.Every > maxSlideBucket) {
		c.errs.add(pathErr(p+".size", "must be a multiple of every, at most %d times it", maxSlideBucket))
	}
	out.emit = *c.emit(p+".emit", a.Emit, uplinks, WindowEnv{})
	out.site = fmt.Sprintf("aggregate#%d:%s|%s|%s", idx, a.Value, a.Every, out.size)
	c.sites[out.site] = &siteInfo{agg: out}
	return out
}

func (c *compiler) stale(p string, idx int, s StaleSpec, uplinks []string) *staleAction {
	out := &staleAction{after: s.After}
	if s.After < time.Second {
		c.errs.add(pathErr(p+".after", "must be at least 1s"))
	}
	out.emit = *c.emit(p+".emit", s.Emit, uplinks, StaleEnv{})
	out.site = fmt.Sprintf("stale#%d", idx)
	c.sites[out.site] = &siteInfo{stale: out}
	return out
}

// prog compiles an expression of the event environment.
func (c *compiler) prog(p, src string, stateful bool, opts ...expr.Option) *vm.Program {
	return c.progEnv(p, src, stateful, append([]expr.Option{expr.Env(Env{})}, opts...)...)
}

func (c *compiler) progEnv(p, src string, stateful bool, opts ...expr.Option) *vm.Program {
	if strings.TrimSpace(src) == "" {
		c.errs.add(pathErr(p, "empty expression"))
		return nil
	}
	pt := &patcher{stateful: stateful}
	if stateful { // the event environment
		pt.slots = c.slots
	}
	all := []expr.Option{expr.MaxNodes(MaxNodes), expr.Patch(pt), expr.DisableBuiltin("now"), divFunc}
	all = append(all, opts...)
	all = append(all, statefulFuncs...)
	prog, err := expr.Compile(src, all...)
	if len(pt.errs) > 0 {
		c.errs.add(pathErr(p, "%s", strings.Join(pt.errs, "; ")))
		return nil
	}
	if err != nil {
		c.errs.add(pathErr(p, "%s", exprMessage(err)))
		return nil
	}
	for _, s := range pt.sites {
		c.sites[s] = &siteInfo{}
	}
	if pt.segments {
		*c.segs = true
	}
	return prog
}

// exprMessage turns expr's multi-line error (message, position, snippet)
// into one line.
func exprMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := fe.Message
		if fe.Line > 1 {
			return fmt.Sprintf("%s (expression line %d, column %d)", msg, fe.Line, fe.Column+1)
		}
		return fmt.Sprintf("%s (column %d)", msg, fe.Column+1)
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func parseTarget(s string, forSet bool) (target, error) {
	switch s {
	case "data":
		return target{kind: tData}, nil
	case "type":
		return target{kind: tType}, nil
	case "source":
		return target{kind: tSource}, nil
	case "subject":
		return target{kind: tSubject}, nil
	case "id":
		return target{kind: tID}, nil
	case "datacontenttype":
		return target{kind: tContentType}, nil
	case "time":
		return target{kind: tTime}, nil
	}
	if rest, ok := strings.CutPrefix(s, "data."); ok {
		path := strings.Split(rest, ".")
		for _, f := range path {
			if f == "" {
				return target{}, fmt.Errorf("%q has an empty field name", s)
			}
		}
		return target{kind: tData, path: path}, nil
	}
	if name, ok := strings.CutPrefix(s, "ext."); ok {
		if !cloudevent.ValidExtensionName(name) || cloudevent.Reserved(name) {
			return target{}, fmt.Errorf("%q: extension names are 1-20 lower-case letters or digits and not a CloudEvents attribute", s)
		}
		return target{kind: tExt, path: []string{name}}, nil
	}
	_ = forSet
	return target{}, fmt.Errorf("unknown target %q: use data, data.field, type, source, subject, id, time, datacontenttype or ext.name", s)
}

// schemaCheck validates data of one event type.
type schemaCheck struct {
	onInvalid string
	validate  func(any) error
}

func compileSchema(p string, sc Schema) (*schemaCheck, error) {
	var errs errList
	if sc.Type == "" {
		errs.add(pathErr(p+".type", "is required"))
	}
	out := &schemaCheck{onInvalid: sc.OnInvalid}
	switch sc.OnInvalid {
	case "":
		out.onInvalid = OnErrorDeadLetter
	case OnErrorDrop, OnErrorDeadLetter, OnInvalidTag:
	default:
		errs.add(pathErr(p+".on_invalid", "must be drop, dead_letter or tag, got %q", sc.OnInvalid))
	}
	if sc.Schema == nil {
		errs.add(pathErr(p+".schema", "is required (a JSON Schema, written as YAML or JSON)"))
	} else {
		v, err := newSchemaValidator(sc.Type, sc.Schema)
		if err != nil {
			errs.add(pathErr(p+".schema", "%s", schemaPrefix.ReplaceAllString(oneLine(err.Error()), "")))
		}
		out.validate = v
	}
	if len(errs) > 0 {
		return nil, errs.join()
	}
	return out, nil
}

// normalizeJSON converts YAML-decoded values to what encoding/json would
// decode (map[string]any, []any, float64, string, bool, nil).
func normalizeJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

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

// divFunc is the / operator of rule expressions: float division that fails
// on a zero divisor instead of returning ±Inf or NaN.
var divFunc = expr.Function("__div", func(args ...any) (any, error) {
	a, okA := toFloat(args[0])
	b, okB := toFloat(args[1])
	if !okA || !okB {
		return nil, fmt.Errorf("invalid operation: %T / %T", args[0], args[1])
	}
	if b == 0 {
		return nil, errors.New("division by zero")
	}
	return a / b, nil
}, new(func(any, any) float64))
