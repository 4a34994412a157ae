package rules

import (
	"strings"

	"github.com/expr-lang/expr"
	"github.com/google/uuid"

	"github.com/edgegate/edgegate/internal/yamlconf"
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
	var errs yamlconf.List
	if cfg.MaxKeys < 0 || cfg.MaxKeys > maxMaxKeys {
		errs.Add(yamlconf.Key("max_keys"), "must be between 1 and %d (0: %d)", maxMaxKeys, DefaultMaxKeys)
	}
	for i, sc := range cfg.Schemas {
		p := yamlconf.Key("schemas").Index(i)
		chk, err := compileSchema(p, sc)
		if err != nil {
			errs.Nest(yamlconf.Path{}, err)
			continue
		}
		if _, dup := s.schemas[sc.Type]; dup {
			errs.Add(p.Key("type"), "%q already has a schema", sc.Type)
		}
		s.schemas[sc.Type] = chk
	}
	names := map[string]int{}
	for i, r := range cfg.Rules {
		p := yamlconf.Key("rules").Index(i)
		if j, dup := names[r.Name]; dup && r.Name != "" {
			errs.Add(p.Key("name"), "%q is already used by rules[%d]", r.Name, j)
		}
		names[r.Name] = i
		cr, err := s.compileRule(p, r, uplinks, cfg.maxKeys())
		errs.Nest(yamlconf.Path{}, err)
		if cr != nil {
			s.rules = append(s.rules, cr)
		}
	}
	for i, t := range cfg.Tests {
		errs.Nest(yamlconf.Path{}, t.validate(yamlconf.Key("tests").Index(i)))
	}
	if err := errs.Err(); err != nil {
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
	errs  yamlconf.List
	sites map[string]*siteInfo
	segs  *bool
	slots *slotTable
}

func (s *Set) compileRule(p yamlconf.Path, r Rule, uplinks []string, maxKeys int) (*rule, error) {
	c := &compiler{sites: map[string]*siteInfo{}, segs: &s.needSegments, slots: s.slots}
	cr := &rule{name: r.Name, onError: r.OnError, stats: &counters{}}
	if r.Name == "" {
		c.errs.Add(p.Key("name"), "is required")
	} else if !namePattern.MatchString(r.Name) {
		c.errs.Add(p.Key("name"), "%q must be 1-64 letters, digits, '.', '_' or '-'", r.Name)
	}
	switch r.OnError {
	case "":
		cr.onError = OnErrorSkip
	case OnErrorSkip, OnErrorDrop, OnErrorDeadLetter:
	default:
		c.errs.Add(p.Key("on_error"), "must be skip, drop or dead_letter, got %q", r.OnError)
	}
	if strings.TrimSpace(r.When) != "" {
		cr.when = c.prog(p.Key("when"), r.When, true, expr.AsBool())
	}
	if k := strings.TrimSpace(r.Key); k != "" && k != "subject" {
		cr.key = c.prog(p.Key("key"), r.Key, true)
	}
	if len(r.Actions) == 0 {
		c.errs.Add(p.Key("actions"), "at least one action is required")
	}
	for i, a := range r.Actions {
		ap := p.Key("actions").Index(i)
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
		return nil, c.errs.Err()
	}
	return cr, nil
}
