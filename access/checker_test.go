package access

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// hashes are computed once per test binary: argon2id is slow on purpose.
var hashes = struct {
	sync.Once
	door, dash string
}{}

func testHashes(t testing.TB) (door, dash string) {
	t.Helper()
	hashes.Do(func() {
		hashes.door, _ = HashSecret([]byte("door-secret"))
		hashes.dash, _ = HashSecret([]byte("dash-secret"))
	})
	return hashes.door, hashes.dash
}

var loopback = []Listener{{ID: "tcp", Address: "127.0.0.1:1883"}}

func compile(t *testing.T, c Config, o Options) *Checker {
	t.Helper()
	ch, err := Compile(c, o)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return ch
}

func TestAuthenticate(t *testing.T) {
	door, dash := testHashes(t)
	c := DefaultConfig()
	c.Users = []User{{Username: "door-1", PasswordHash: door}, {Username: "dashboard", PasswordHash: dash}}
	ch := compile(t, c, Options{Listeners: []Listener{{ID: "tcp", Address: ":1883"}}})

	for _, tc := range []struct {
		name   string
		req    Request
		want   Identity
		reason string
	}{
		{"password", Request{ClientID: "door-1", Username: "door-1", Password: []byte("door-secret")},
			Identity{ClientID: "door-1", Username: "door-1", Method: MethodPassword, Credential: door}, ""},
		{"wrong password", Request{ClientID: "door-1", Username: "door-1", Password: []byte("dash-secret")}, Identity{}, ReasonWrongPassword},
		{"no password", Request{ClientID: "door-1", Username: "door-1"}, Identity{}, ReasonWrongPassword},
		{"unknown user", Request{ClientID: "x", Username: "x", Password: []byte("door-secret")}, Identity{}, ReasonUnknownUser},
		{"anonymous", Request{ClientID: "door-1"}, Identity{}, ReasonAnonymous},
		{"client id of another", Request{ClientID: "door-2", Username: "door-1", Password: []byte("door-secret")}, Identity{}, ReasonClientID},
		{"certificate", Request{ClientID: "cam-7", CertIdentity: "cam-7", Username: "door-1"},
			Identity{ClientID: "cam-7", Username: "cam-7", Method: MethodCertificate}, ""},
		{"certificate, other client id", Request{ClientID: "cam-8", CertIdentity: "cam-7"}, Identity{}, ReasonClientID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := ch.Authenticate(tc.req)
			if tc.reason != "" {
				var ae *Error
				if !errors.As(err, &ae) || ae.Reason != tc.reason {
					t.Fatalf("err = %v, want reason %s", err, tc.reason)
				}
				return
			}
			if err != nil || id != tc.want {
				t.Fatalf("got %+v, %v; want %+v", id, err, tc.want)
			}
		})
	}

	c.ClientID = ClientIDAny
	ch = compile(t, c, Options{Listeners: loopback})
	if _, err := ch.Authenticate(Request{ClientID: "anything", Username: "door-1", Password: []byte("door-secret")}); err != nil {
		t.Errorf("client_id: any: %v", err)
	}
}

func TestAnonymousAccess(t *testing.T) {
	door, _ := testHashes(t)
	users := []User{{Username: "door-1", PasswordHash: door}}
	all := []Listener{{ID: "tcp", Address: ":1883"}}
	for _, tc := range []struct {
		name      string
		c         Config
		listeners []Listener
		anonymous bool
		err       string
		warnings  int
	}{
		{"dev mode: loopback, nobody can authenticate", Config{}, loopback, true, "", 0},
		{"loopback with users", Config{Users: users}, loopback, false, "", 0},
		{"loopback with client certificates", Config{}, []Listener{{ID: "tls", Address: "[::1]:8883", ClientCerts: true}}, false, "", 0},
		{"beyond loopback, nobody can authenticate", Config{}, all, false,
			`allow_anonymous: mqtt listener "tcp" binds :1883 beyond loopback and no device can authenticate`, 0},
		{"beyond loopback, allowed", Config{AllowAnonymous: true}, all, true, "", 2},
		{"beyond loopback, users, no acl", Config{Users: users}, all, false, "", 1},
		{"beyond loopback, users, acl", Config{Users: users, ACL: []Rule{{Users: []string{"*"}, Publish: []string{"#"}}}}, all, false, "", 0},
		{"beyond loopback, client certificates", Config{}, append([]Listener{{ID: "tls", Address: ":8883", ClientCerts: true}}, all...), false, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.ClientID = ClientIDUsername
			ch, err := Compile(tc.c, Options{Listeners: tc.listeners})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.anonymous != tc.anonymous || len(ch.Warnings()) != tc.warnings {
				t.Errorf("anonymous %v, warnings %q; want %v, %d", ch.anonymous, ch.Warnings(), tc.anonymous, tc.warnings)
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1883": true, "127.1.2.3:0": true, "[::1]:1883": true, "localhost:1883": true,
		":1883": false, "0.0.0.0:1883": false, "[::]:1883": false, "192.168.1.2:1883": false, "gw.local:1883": false, "junk": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v", addr, got)
		}
	}
}

func TestACLDecisions(t *testing.T) {
	door, _ := testHashes(t)
	c := DefaultConfig()
	c.Users = []User{{Username: "door-1", PasswordHash: door}}
	c.ACL = []Rule{
		{Users: []string{Everyone}, Publish: []string{"devices/%u/#"}, Subscribe: []string{"devices/%u/cmd/#"}},
		{Users: []string{"dashboard"}, Subscribe: []string{"devices/#", "$SYS/#"}},
		{Users: []string{Anonymous}, Publish: []string{"public/%c"}, Subscribe: []string{"public/#"}},
	}
	ch := compile(t, c, Options{Listeners: loopback})
	dev := Identity{ClientID: "door-1", Username: "door-1", Method: MethodPassword}
	dash := Identity{ClientID: "dashboard", Username: "dashboard", Method: MethodCertificate}
	anon := Identity{ClientID: "door-1", Method: MethodAnonymous}
	for _, tc := range []struct {
		id     Identity
		action string // pub | sub
		topic  string
		want   bool
	}{
		{dev, "pub", "devices/door-1/telemetry", true},
		{dev, "pub", "devices/door-2/telemetry", false},
		{dev, "pub", "devices/door-1", true},
		{dev, "pub", "$SYS/x", false},
		{dev, "sub", "devices/door-1/cmd/#", true},
		{dev, "sub", "devices/door-1/telemetry", false},
		{dev, "sub", "devices/door-2/cmd/#", false},
		{dev, "sub", "devices/+/cmd/#", false},
		{dev, "sub", "#", false},
		{dev, "sub", "$SYS/#", false},
		{dash, "sub", "devices/#", true},
		{dash, "sub", "$SYS/#", true},
		{dash, "sub", "#", false},
		{dash, "pub", "devices/dashboard/x", true}, // "*" includes certificate identities
		{anon, "pub", "devices/door-1/telemetry", false},
		{anon, "pub", "public/door-1", true},
		{anon, "sub", "public/#", true},
		{anon, "sub", "devices/door-1/cmd/#", false},
	} {
		var got bool
		if tc.action == "pub" {
			got = ch.CanPublish(tc.id, tc.topic)
		} else {
			got = ch.CanSubscribe(tc.id, tc.topic)
		}
		if got != tc.want {
			t.Errorf("%s %s %s: got %v, want %v", tc.id.Username+"/"+tc.id.ClientID, tc.action, tc.topic, got, tc.want)
		}
	}

	// Without an ACL: everything but '$' topics.
	c.ACL = nil
	ch = compile(t, c, Options{Listeners: loopback})
	if !ch.CanPublish(dev, "devices/door-2/x") || !ch.CanSubscribe(dev, "#") || ch.CanSubscribe(dev, "$SYS/#") || ch.CanPublish(dev, "$SYS/x") {
		t.Error("no ACL: want every topic but '$' ones")
	}
	// An empty ACL denies everything.
	c.ACL = []Rule{}
	ch = compile(t, c, Options{Listeners: loopback})
	if ch.CanPublish(dev, "devices/door-1/x") || ch.CanSubscribe(dev, "devices/door-1/x") {
		t.Error("acl: [] granted a topic")
	}
}

// Deny lists take back part of a grant, whichever rule made it: the
// interoperability suites' broker grants everything but subscriptions to
// test/nosubscribe, and "#" must still be granted (without delivering
// test/nosubscribe).
func TestACLDeny(t *testing.T) {
	c := DefaultConfig()
	c.AllowAnonymous = true
	c.ACL = []Rule{
		{Users: []string{Anonymous}, Publish: []string{"#"}, Subscribe: []string{"#"}},
		{Users: []string{Anonymous}, DenySubscribe: []string{"test/nosubscribe"}, DenyPublish: []string{"secret/%c/#"}},
	}
	ch := compile(t, c, Options{Listeners: loopback})
	anon := Identity{ClientID: "c1", Method: MethodAnonymous}
	for _, tc := range []struct {
		sub  bool
		s    string
		want bool
	}{
		{true, "test/nosubscribe", false},
		{true, "#", true},
		{true, "+/+", true},
		{true, "test/+", true},
		{true, "TopicA/B", true},
		{false, "test/nosubscribe", true}, // publishing is not denied
		{false, "secret/c1/x", false},     // deny_publish, with %c
		{false, "secret/c2/x", true},
		{true, "secret/c1/x", true},
	} {
		got := ch.CanPublish(anon, tc.s)
		if tc.sub {
			got = ch.CanSubscribe(anon, tc.s)
		}
		if got != tc.want {
			t.Errorf("sub=%v %s: %v, want %v", tc.sub, tc.s, got, tc.want)
		}
	}
}

func TestAdmits(t *testing.T) {
	door, dash := testHashes(t)
	c := DefaultConfig()
	c.Users = []User{{Username: "door-1", PasswordHash: door}}
	before := compile(t, c, Options{Listeners: loopback})
	id, err := before.Authenticate(Request{ClientID: "door-1", Username: "door-1", Password: []byte("door-secret")})
	if err != nil {
		t.Fatal(err)
	}
	if !before.Admits(id) {
		t.Fatal("a client is not admitted by the configuration it authenticated under")
	}
	c.Users = []User{{Username: "door-1", PasswordHash: dash}} // secret rotated
	if compile(t, c, Options{Listeners: loopback}).Admits(id) {
		t.Error("admitted after its hash changed")
	}
	c.Users = []User{{Username: "door-2", PasswordHash: door}} // removed
	if compile(t, c, Options{Listeners: loopback}).Admits(id) {
		t.Error("admitted after its user was removed")
	}
	anon := Identity{ClientID: "x", Method: MethodAnonymous}
	if !compile(t, Config{ClientID: ClientIDUsername}, Options{Listeners: loopback}).Admits(anon) {
		t.Error("anonymous not admitted in dev mode")
	}
	if compile(t, c, Options{Listeners: loopback}).Admits(anon) {
		t.Error("anonymous admitted once users are configured")
	}
}

func TestCompileErrors(t *testing.T) {
	door, _ := testHashes(t)
	c := Config{
		ClientID: "whatever",
		Users: []User{
			{Username: "a", PasswordHash: door},
			{Username: "a", PasswordHash: door},
			{Username: "b/c", PasswordHash: "plaintext"},
			{Username: "*", PasswordHash: door},
		},
		ACL: []Rule{
			{Publish: []string{"x"}},
			{Users: []string{"*"}},
			{Users: []string{"a", "a"}, Subscribe: []string{"a/#/b", "ok/%q"}},
		},
	}
	_, err := Compile(c, Options{Listeners: loopback})
	var got []string
	for _, e := range yamlconf.Problems(err) {
		got = append(got, e.Error())
	}
	want := []string{
		`users[1].username: "a" is already a user (users[0])`,
		`users[2].username: "b/c": must not contain '/', '+', '#' or NUL (it stands for one topic level in %u)`,
		`users[2].password_hash: must be an argon2id ("$argon2id$v=19$…") or bcrypt ("$2b$…") hash, as edgegate passwd prints`,
		`users[3].username: "*" is reserved for ACL rules`,
		`client_id: must be username or any, got "whatever"`,
		`acl[0].users: must name at least one user, "*" or "anonymous"`,
		`acl[1]: grants nothing: add publish and/or subscribe`,
		`acl[2].subscribe[0]: "a/#/b": '#' must be the last level`,
		`acl[2].subscribe[1]: "ok/%q": level "%q": unknown variable %q: want %u, %c or %%`,
		`acl[2].users[1]: "a" is listed twice`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUsersFile(t *testing.T) {
	door, dash := testHashes(t)
	dir := t.TempDir()
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "devices.yaml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("users:\n  - username: door-1\n    password_hash: \"" + door + "\"\n")
	c := DefaultConfig()
	c.UsersFile = "devices.yaml"
	c.Users = []User{{Username: "dashboard", PasswordHash: dash}}
	ch := compile(t, c, Options{Dir: dir, Listeners: loopback})
	if _, err := ch.Authenticate(Request{ClientID: "door-1", Username: "door-1", Password: []byte("door-secret")}); err != nil {
		t.Errorf("user of the file: %v", err)
	}
	if _, err := ch.Authenticate(Request{ClientID: "dashboard", Username: "dashboard", Password: []byte("dash-secret")}); err != nil {
		t.Errorf("inline user: %v", err)
	}

	// Problems of the file are located in it.
	write("users:\n  - username: door-1\n    password_hash: nope\n  - username: door-1\n    pasword_hash: x\n")
	_, err := Compile(c, Options{Dir: dir, Listeners: loopback})
	path := filepath.Join(dir, "devices.yaml")
	for _, want := range []string{
		path + `:5:5: users[1].pasword_hash: unknown field "pasword_hash"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
	write("users:\n  - username: door-1\n    password_hash: nope\n  - username: door-1\n    password_hash: \"" + door + "\"\n  - username: dashboard\n    password_hash: \"" + door + "\"\n")
	_, err = Compile(c, Options{Dir: dir, Listeners: loopback})
	for _, want := range []string{
		path + `:3:20: users[0].password_hash: must be an argon2id`,
		path + `:4:15: users[1].username: "door-1" is already users[0]`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
	write("users:\n  - username: dashboard\n    password_hash: \"" + door + "\"\n")
	_, err = Compile(c, Options{Dir: dir, Listeners: loopback})
	if want := `users[0].username: "dashboard" is already a user (in users_file devices.yaml)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	c.UsersFile = "missing.yaml"
	_, err = Compile(c, Options{Dir: dir, Listeners: loopback})
	if err == nil || !strings.HasPrefix(err.Error(), "users_file: open ") {
		t.Errorf("missing file: %v", err)
	}
}

func TestVerifierCachesSuccesses(t *testing.T) {
	door, _ := testHashes(t)
	v := NewVerifier(VerifierOptions{})
	if ok, err := v.Verify("door-1", door, []byte("wrong")); ok || err != nil {
		t.Fatalf("wrong secret: %v, %v", ok, err)
	}
	if v.cachedCount() != 0 {
		t.Fatal("a failure was cached")
	}
	start := time.Now()
	if ok, err := v.Verify("door-1", door, []byte("door-secret")); !ok || err != nil {
		t.Fatalf("right secret: %v, %v", ok, err)
	}
	cold := time.Since(start)
	start = time.Now()
	for range 100 {
		if ok, _ := v.Verify("door-1", door, []byte("door-secret")); !ok {
			t.Fatal("cached success lost")
		}
	}
	warm := time.Since(start) / 100
	t.Logf("cold %v, cached %v", cold, warm)
	if warm > cold/10 {
		t.Errorf("a cached verification took %v, the first %v", warm, cold)
	}
	// The same secret for another user, or another hash, is not a hit.
	if ok, _ := v.Verify("door-2", door, []byte("door-secret")); !ok || v.cachedCount() != 2 {
		t.Errorf("cache holds %d entries, want 2", v.cachedCount())
	}
}

func TestVerifierBounds(t *testing.T) {
	door, _ := testHashes(t)
	v := NewVerifier(VerifierOptions{Concurrency: 1, Wait: time.Millisecond, MaxCached: 2})
	v.slots <- struct{}{} // the only slot is taken
	if _, err := v.Verify("door-1", door, []byte("door-secret")); !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	<-v.slots
	for _, u := range []string{"a", "b", "c"} {
		if ok, _ := v.Verify(u, door, []byte("door-secret")); !ok {
			t.Fatal("not verified")
		}
	}
	if n := v.cachedCount(); n != 2 {
		t.Errorf("cache holds %d, want at most 2", n)
	}
}
