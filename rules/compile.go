package rules

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/google/uuid"
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
