package access

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Client id rules (Config.ClientID).
const (
	// ClientIDUsername: a client that authenticated (password or
	// certificate) must use its identity as its client id, so that no
	// device can take over another's session or speak under its id.
	ClientIDUsername = "username"
	// ClientIDAny: any client id.
	ClientIDAny = "any"
)

// Names an ACL rule's users may hold besides user names.
const (
	// Everyone is every authenticated client (password or certificate).
	Everyone = "*"
	// Anonymous is every client that did not authenticate.
	Anonymous = "anonymous"
)

// Config is the `auth:` section. Start from DefaultConfig.
type Config struct {
	// AllowAnonymous lets clients connect without credentials. When false,
	// anonymous clients are still let in while no client can authenticate
	// (no users, no client-certificate listener) and every listener binds
	// loopback: the shipped development setup.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// Users are the password users.
	Users []User `yaml:"users"`
	// UsersFile names a YAML file with more users (`users: [...]`, as
	// above), relative to the configuration file. It is read at start and
	// at every reload.
	UsersFile string `yaml:"users_file"`
	// ClientID is "username" (default: a client that authenticated, by
	// password or certificate, must use its identity as its client id, so
	// no device can take over another's session) or "any".
	ClientID string `yaml:"client_id"`
	// ACL grants topics. Absent (nil): every client may publish and
	// subscribe to every topic that does not start with '$'. Present (even
	// empty): what no rule grants is refused.
	ACL []Rule `yaml:"acl"`
	// ObscureDenials answers MQTT 5 clients 0x80 (unspecified error)
	// instead of 0x87 (not authorized) for a denied subscription or
	// publish, so they do not learn why.
	ObscureDenials bool `yaml:"obscure_denials"`
}

// User is one password user.
type User struct {
	// Username is the name the device connects with (and its client id,
	// with client_id: username); it stands for one topic level in ACL
	// templates (%u), so it must not contain '/', '+' or '#' nor start
	// with '$'.
	Username string `yaml:"username"`
	// PasswordHash is an argon2id PHC string (edgegate passwd) or a bcrypt
	// hash.
	PasswordHash string `yaml:"password_hash"`
}

// Rule grants topics to some clients.
type Rule struct {
	// Users are user names (password users or certificate identities),
	// "*" (every authenticated client) and/or "anonymous" (every client
	// that did not authenticate).
	Users []string `yaml:"users"`
	// Publish are the topic filters these users may publish to. A filter's
	// levels may hold %u (the authenticated identity) and %c (the client
	// id), and the wildcards + and #; a '$' topic is granted only by a
	// filter that names its first level literally.
	Publish []string `yaml:"publish"`
	// Subscribe are the topic filters these users may subscribe to (a
	// subscription must lie within one of them); templates as in Publish.
	Subscribe []string `yaml:"subscribe"`
	// DenyPublish and DenySubscribe take back part of what the rules
	// grant these users, whichever rule granted it: a topic a DenyPublish
	// template matches, a subscription filter a DenySubscribe template
	// covers entirely, and the deliveries on topics it matches (a
	// subscription it covers only in part stays, and does not receive
	// those).
	DenyPublish []string `yaml:"deny_publish"`
	// DenySubscribe takes back subscriptions, as DenyPublish does
	// publishes.
	DenySubscribe []string `yaml:"deny_subscribe"`
}

// DefaultConfig returns no users, anonymous access as for development (see
// AllowAnonymous), ClientIDUsername and no ACL.
func DefaultConfig() Config {
	return Config{ClientID: ClientIDUsername}
}

// Listener is what Compile needs to know of one MQTT listener.
type Listener struct {
	ID      string
	Address string // host:port as configured
	// ClientCerts: the listener verifies client certificates, whose
	// identity authenticates a client.
	ClientCerts bool
}

// Options are the facts from outside the section that Compile needs.
type Options struct {
	// Dir is the directory UsersFile is relative to (the configuration
	// file's); "" is the working directory.
	Dir string
	// Listeners are the broker's listeners.
	Listeners []Listener
	// Verifier checks secrets; nil: a new one (its cache starts empty).
	// Share one across reloads (or set it later with WithVerifier).
	Verifier *Verifier
}

// maxUsersFileBytes bounds the users file.
const maxUsersFileBytes = 64 << 20

// Compile checks the section and builds the Checker. Every problem is a
// *yamlconf.Error: with its path from the section's root, except those
// found in the users file, which are already located in that file
// (file:line:col and a path from that file's root) and must be reported
// as they are.
func Compile(c Config, o Options) (*Checker, error) {
	var errs yamlconf.List
	users := map[string]string{}  // user name → stored hash
	origin := map[string]string{} // user name → where it was first listed
	if c.UsersFile != "" {
		path := c.UsersFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(o.Dir, path)
		}
		fileUsers, err := loadUsersFile(path)
		switch {
		case isLocated(err):
			errs = append(errs, err)
		case err != nil:
			errs.Add(yamlconf.Key("users_file"), "%v", err)
		}
		for _, u := range fileUsers {
			users[u.Username] = u.PasswordHash
			origin[u.Username] = "in users_file " + c.UsersFile
		}
	}
	for i, u := range c.Users {
		at := yamlconf.Key("users").Index(i)
		checkUser(u, at, &errs)
		if where, dup := origin[u.Username]; dup && u.Username != "" {
			errs.Add(at.Key("username"), "%q is already a user (%s)", u.Username, where)
			continue
		}
		users[u.Username] = u.PasswordHash
		origin[u.Username] = fmt.Sprintf("users[%d]", i)
	}
	switch c.ClientID {
	case ClientIDUsername, ClientIDAny:
	default:
		errs.Add(yamlconf.Key("client_id"), "must be %s or %s, got %q", ClientIDUsername, ClientIDAny, c.ClientID)
	}
	ch := &Checker{users: users, clientIDBound: c.ClientID != ClientIDAny, obscure: c.ObscureDenials, verifier: o.Verifier}
	if ch.verifier == nil {
		ch.verifier = NewVerifier(VerifierOptions{})
	}
	if c.ACL != nil {
		ch.acl = &acl{byUser: map[string][]int{}}
		for i, r := range c.ACL {
			ch.acl.add(r, yamlconf.Key("acl").Index(i), &errs)
		}
	}
	ch.anonymous, ch.warnings = anonymousAccess(c, len(users) > 0, o.Listeners, &errs)
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	return ch, nil
}

// isLocated reports whether err holds problems located in a file.
func isLocated(err error) bool {
	probs := yamlconf.Problems(err)
	return len(probs) > 0 && probs[0].File != ""
}

// checkUser reports the problems of one user at path at.
func checkUser(u User, at yamlconf.Path, errs *yamlconf.List) {
	if err := checkUsername(u.Username); err != nil {
		errs.Add(at.Key("username"), "%v", err)
	}
	if _, err := parseHash(u.PasswordHash); err != nil {
		errs.Add(at.Key("password_hash"), "%v", err)
	}
}

// checkUsername accepts names that can stand for one topic level (so %u
// can match them) and are not a rule's special names.
func checkUsername(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("must not be empty")
	case name == Everyone || name == Anonymous:
		return fmt.Errorf("%q is reserved for ACL rules", name)
	case len(name) > 256:
		return fmt.Errorf("longer than 256 bytes")
	case !utf8.ValidString(name):
		return fmt.Errorf("not valid UTF-8")
	case strings.ContainsAny(name, "/+#\x00"):
		return fmt.Errorf("%q: must not contain '/', '+', '#' or NUL (it stands for one topic level in %%u)", name)
	case strings.HasPrefix(name, "$"):
		return fmt.Errorf("%q: must not start with '$'", name)
	}
	return nil
}

// usersFile is the layout of the users file.
type usersFile struct {
	Users []User `yaml:"users"`
}

// loadUsersFile reads and checks a users file. Problems of its content come
// back located in it; an error reading it is a plain error.
func loadUsersFile(path string) ([]User, error) {
	data, err := yamlconf.ReadFile(path, maxUsersFileBytes)
	if err != nil {
		return nil, err
	}
	var uf usersFile
	doc, err := yamlconf.Decode(path, data, &uf)
	if doc == nil || err != nil {
		return nil, err // located by the decoder
	}
	var errs yamlconf.List
	seen := map[string]int{}
	for i, u := range uf.Users {
		at := yamlconf.Key("users").Index(i)
		checkUser(u, at, &errs)
		if j, dup := seen[u.Username]; dup && u.Username != "" {
			errs.Add(at.Key("username"), "%q is already users[%d]", u.Username, j)
		}
		seen[u.Username] = i
	}
	if len(errs) > 0 {
		return nil, doc.Locate(errs.Err())
	}
	return uf.Users, nil
}

// anonymousAccess decides whether anonymous clients are let in and what to
// warn about, and refuses a configuration that listens beyond loopback
// with no way for a client to authenticate and anonymous access not
// asked for.
func anonymousAccess(c Config, hasUsers bool, listeners []Listener, errs *yamlconf.List) (bool, []string) {
	canAuthenticate := hasUsers
	var open []Listener // beyond loopback
	for _, l := range listeners {
		canAuthenticate = canAuthenticate || l.ClientCerts
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			continue // the mqtt section reports it
		}
		if !Loopback(l.Address) {
			open = append(open, l)
		}
	}
	var warnings []string
	switch {
	case c.AllowAnonymous:
		for _, l := range open {
			warnings = append(warnings, fmt.Sprintf("auth.allow_anonymous is true and mqtt listener %q binds %s beyond loopback: anyone who can reach it may connect without credentials", l.ID, l.Address))
		}
	case !canAuthenticate && len(open) > 0:
		l := open[0]
		errs.Add(yamlconf.Key("allow_anonymous"), "mqtt listener %q binds %s beyond loopback and no device can authenticate (no auth.users, no client-certificate listener): add users, or set allow_anonymous: true to accept anonymous devices there", l.ID, l.Address)
	}
	if c.ACL == nil && len(open) > 0 {
		warnings = append(warnings, fmt.Sprintf("no auth.acl and mqtt listener %q binds %s beyond loopback: every client may publish and subscribe to every topic not starting with '$'", open[0].ID, open[0].Address))
	}
	return c.AllowAnonymous || (!canAuthenticate && len(open) == 0), warnings
}

// Loopback reports whether a host:port address binds only loopback
// (127.0.0.0/8, ::1 or localhost). An empty host binds every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
