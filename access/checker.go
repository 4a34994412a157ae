package access

import (
	"errors"
	"strings"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// How a client authenticated (Identity.Method).
const (
	MethodAnonymous   = "anonymous"
	MethodPassword    = "password"
	MethodCertificate = "certificate"
)

// Request is what a connecting client presented.
type Request struct {
	ClientID string
	// Username and Password are the CONNECT's, unverified ("" and nil when
	// absent).
	Username string
	Password []byte
	// CertIdentity is the identity taken from the client certificate the
	// listener verified; "" without one.
	CertIdentity string
}

// Identity is who a client is once authenticated.
type Identity struct {
	ClientID string
	// Username is the authenticated identity: the password user or the
	// certificate identity; "" for an anonymous client.
	Username string
	// Method is MethodAnonymous, MethodPassword or MethodCertificate.
	Method string
	// Credential identifies what the client proved (the stored hash it
	// matched), so that a reload can tell whether it still holds.
	Credential string
}

// Error is why Authenticate refused a client; Reason is one of the
// Reason… constants (a metric label).
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return "access: " + e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Why a client was refused (Error.Reason).
const (
	ReasonUnknownUser   = "unknown_user"   // a user name that is not configured
	ReasonWrongPassword = "wrong_password" // a configured user, the wrong secret
	ReasonAnonymous     = "anonymous"      // no credentials, anonymous access is off
	ReasonClientID      = "client_id"      // client id is not the identity (client_id: username)
	ReasonBusy          = "busy"           // no verification slot in time
)

var (
	errUnknownUser   = errors.New("unknown user")
	errWrongPassword = errors.New("wrong password")
	errAnonymous     = errors.New("anonymous clients are not allowed")
	errClientID      = errors.New("the client id must be the authenticated identity")
)

// Checker is a compiled `auth:` section. It is immutable and safe for
// concurrent use.
type Checker struct {
	users         map[string]string // user name → stored hash
	anonymous     bool
	clientIDBound bool
	obscure       bool
	acl           *acl // nil: no ACL
	verifier      *Verifier
	warnings      []string
}

// WithVerifier returns a copy of c that checks secrets with v: one
// Verifier kept across reloads keeps its cache.
func (c *Checker) WithVerifier(v *Verifier) *Checker {
	cc := *c
	cc.verifier = v
	return &cc
}

// ObscureDenials reports whether denials should not say they are about
// authorization (Config.ObscureDenials).
func (c *Checker) ObscureDenials() bool { return c.obscure }

// Warnings are what the configuration opens beyond loopback, to log at
// every start and reload.
func (c *Checker) Warnings() []string { return c.warnings }

// Authenticate decides who a connecting client is, or refuses it with an
// *Error. A verified client certificate authenticates its identity (user
// name and password are then ignored). Otherwise a user name, when users
// are configured, must come with its user's secret; a client without a
// user name is anonymous, let in only when anonymous access is on. While
// no users are configured, a user name is not checked and the client is
// anonymous. With client_id: username, an authenticated client's client
// id must be its identity. Authenticate may block on the Verifier.
func (c *Checker) Authenticate(r Request) (Identity, error) {
	id := Identity{ClientID: r.ClientID, Method: MethodAnonymous}
	switch {
	case r.CertIdentity != "":
		id.Username, id.Method = r.CertIdentity, MethodCertificate
	case r.Username != "" && len(c.users) > 0:
		stored, ok := c.users[r.Username]
		if !ok {
			return Identity{}, &Error{ReasonUnknownUser, errUnknownUser}
		}
		ok, err := c.verifier.Verify(r.Username, stored, r.Password)
		switch {
		case errors.Is(err, ErrBusy):
			return Identity{}, &Error{ReasonBusy, err}
		case err != nil || !ok:
			return Identity{}, &Error{ReasonWrongPassword, errWrongPassword}
		}
		id.Username, id.Method, id.Credential = r.Username, MethodPassword, stored
	case !c.anonymous:
		return Identity{}, &Error{ReasonAnonymous, errAnonymous}
	}
	if c.clientIDBound && id.Method != MethodAnonymous && r.ClientID != id.Username {
		return Identity{}, &Error{ReasonClientID, errClientID}
	}
	return id, nil
}

// Admits reports whether a client that authenticated as id under an
// earlier configuration may stay connected under this one: its password
// user still exists with the same hash, anonymous access is still on for
// an anonymous client, and its client id still obeys the client id rule.
// A certificate identity stays (the listener's CA decides).
func (c *Checker) Admits(id Identity) bool {
	switch id.Method {
	case MethodAnonymous:
		return c.anonymous
	case MethodPassword:
		if stored, ok := c.users[id.Username]; !ok || stored != id.Credential {
			return false
		}
	case MethodCertificate:
	default:
		return false
	}
	return !c.clientIDBound || id.ClientID == id.Username
}

// CanPublish reports whether id may publish to topic (a topic name).
func (c *Checker) CanPublish(id Identity, topic string) bool {
	if c.acl == nil {
		return !strings.HasPrefix(topic, "$")
	}
	return c.acl.grants(id, topic, false)
}

// CanSubscribe reports whether id may subscribe to filter (a topic filter
// without a $share/{group}/ prefix), and, called with a topic name, whether
// a subscription of id may receive a message published to it.
func (c *Checker) CanSubscribe(id Identity, filter string) bool {
	if c.acl == nil {
		return !strings.HasPrefix(filter, "$")
	}
	return c.acl.grants(id, filter, true)
}

// acl is the compiled rules, indexed by who they apply to.
type acl struct {
	rules     []aclRule
	everyone  []int            // rules for "*"
	anonymous []int            // rules for "anonymous"
	byUser    map[string][]int // rules naming a user
	// denies: some rule has deny_publish (0) or deny_subscribe (1), so a
	// grant is final only once every rule has been seen.
	denies [2]bool
}

type aclRule struct {
	publish, subscribe         []template
	denyPublish, denySubscribe []template
}

// add compiles rule r (at path at) and indexes it.
func (a *acl) add(r Rule, at yamlconf.Path, errs *yamlconf.List) {
	var cr aclRule
	if len(r.Users) == 0 {
		errs.Add(at.Key("users"), "must name at least one user, %q or %q", Everyone, Anonymous)
	}
	if len(r.Publish)+len(r.Subscribe)+len(r.DenyPublish)+len(r.DenySubscribe) == 0 {
		errs.Add(at, "grants nothing: add publish and/or subscribe")
	}
	compile := func(key string, srcs []string) []template {
		var out []template
		for j, s := range srcs {
			t, err := compileTemplate(s)
			if err != nil {
				errs.Add(at.Key(key).Index(j), "%q: %v", s, err)
				continue
			}
			out = append(out, t)
		}
		return out
	}
	cr.publish = compile("publish", r.Publish)
	cr.subscribe = compile("subscribe", r.Subscribe)
	cr.denyPublish = compile("deny_publish", r.DenyPublish)
	cr.denySubscribe = compile("deny_subscribe", r.DenySubscribe)
	a.denies[0] = a.denies[0] || len(cr.denyPublish) > 0
	a.denies[1] = a.denies[1] || len(cr.denySubscribe) > 0
	n := len(a.rules)
	a.rules = append(a.rules, cr)
	seen := map[string]bool{}
	for j, u := range r.Users {
		switch {
		case seen[u]:
			errs.Add(at.Key("users").Index(j), "%q is listed twice", u)
			continue
		case u == Everyone:
			a.everyone = append(a.everyone, n)
		case u == Anonymous:
			a.anonymous = append(a.anonymous, n)
		case u == "":
			errs.Add(at.Key("users").Index(j), "must not be empty")
		default:
			a.byUser[u] = append(a.byUser[u], n)
		}
		seen[u] = true
	}
}

// grants reports whether the rules that apply to id grant s, a topic name
// (publish; or a delivery when sub) or a subscription filter (sub), and
// none of them denies it.
func (a *acl) grants(id Identity, s string, sub bool) bool {
	vs := newVars(id.Username, id.ClientID)
	lists := [2][]int{a.anonymous}
	if id.Method == MethodAnonymous {
		vs.u = "" // %u never matches an anonymous client
	} else {
		lists = [2][]int{a.everyone, a.byUser[id.Username]}
	}
	kind := 0
	if sub {
		kind = 1
	}
	granted := false
	for _, rules := range lists {
		for _, i := range rules {
			r := &a.rules[i]
			grant, deny := r.publish, r.denyPublish
			if sub {
				grant, deny = r.subscribe, r.denySubscribe
			}
			if matchAny(deny, s, sub, vs) {
				return false
			}
			granted = granted || matchAny(grant, s, sub, vs)
			if granted && !a.denies[kind] {
				return true
			}
		}
	}
	return granted
}

// matchAny reports whether one of ts matches topic s (covers filter s,
// when sub).
func matchAny(ts []template, s string, sub bool, vs vars) bool {
	for j := range ts {
		if sub && ts[j].covers(s, vs) || !sub && ts[j].matchTopic(s, vs) {
			return true
		}
	}
	return false
}
