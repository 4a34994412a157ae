package configsign_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/configsign"
)

func newKey(t testing.TB) configsign.PrivateKey {
	t.Helper()
	k, err := configsign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const doc = "gateway_id: gw-1\nrules:\n  - name: hot\n    when: data.t > 30\n"

func TestSignDocumentVerifies(t *testing.T) {
	k := newKey(t)
	for _, tc := range []struct{ name, doc string }{
		{"lf", doc},
		{"crlf", strings.ReplaceAll(doc, "\n", "\r\n")},
		{"no final line break", strings.TrimSuffix(doc, "\n")},
		{"crlf without final line break", strings.TrimSuffix(strings.ReplaceAll(doc, "\n", "\r\n"), "\r\n")},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, line, err := configsign.SignDocument(k, []byte(tc.doc), 42)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, []byte(tc.doc)) {
				t.Fatalf("signed document does not start with the original:\n%q", out)
			}
			if strings.Contains(tc.doc, "\r\n") && !bytes.HasSuffix(out, []byte("\r\n")) {
				t.Errorf("a CRLF document's signature line ends with LF: %q", out)
			}
			body, got, err := configsign.Split(out)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || got.String() != line.String() {
				t.Fatalf("Split line = %v, want %v", got, line)
			}
			v, err := configsign.Verify([]configsign.PublicKey{k.Public()}, body, *got)
			if err != nil || v != 42 {
				t.Fatalf("Verify = %d, %v; want 42, nil", v, err)
			}
			// Signing again replaces the line.
			again, _, err := configsign.SignDocument(k, out, 43)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(again, []byte("# edgegate-signature:")); n != 1 {
				t.Errorf("re-signed document holds %d signature lines:\n%s", n, again)
			}
			if !bytes.Contains(again, []byte("version=43")) {
				t.Errorf("re-signed document lacks version=43:\n%s", again)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	k, other := newKey(t), newKey(t)
	keys := []configsign.PublicKey{k.Public()}
	signed, line, err := configsign.SignDocument(k, []byte(doc), 7)
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := configsign.Split(signed)

	tampered := bytes.Replace(body, []byte("30"), []byte("99"), 1)
	if _, err := configsign.Verify(keys, tampered, line); !errors.Is(err, configsign.ErrBadSignature) {
		t.Errorf("tampered body: err = %v, want ErrBadSignature", err)
	}
	bumped := line
	bumped.Version = 8
	if _, err := configsign.Verify(keys, body, bumped); !errors.Is(err, configsign.ErrBadSignature) {
		t.Errorf("changed version: err = %v, want ErrBadSignature", err)
	}
	var unknown *configsign.UnknownKeyError
	_, err = configsign.Verify([]configsign.PublicKey{other.Public()}, body, line)
	if !errors.As(err, &unknown) || unknown.KeyID != k.Public().ID() {
		t.Errorf("wrong key: err = %v, want UnknownKeyError naming %s", err, k.Public().ID())
	}
	if !strings.Contains(err.Error(), other.Public().ID()) {
		t.Errorf("unknown key error does not list the configured key: %v", err)
	}
	// Same key id, other key: a forged line claiming the configured key.
	forged, _ := configsign.Sign(other, body, 7)
	forged.KeyID = k.Public().ID()
	if _, err := configsign.Verify(keys, body, forged); !errors.Is(err, configsign.ErrBadSignature) {
		t.Errorf("forged key id: err = %v, want ErrBadSignature", err)
	}
	if _, err := configsign.Sign(k, body, 0); err == nil {
		t.Error("Sign accepted version 0")
	}
}

func TestSplitRefusesMisplacedLines(t *testing.T) {
	k := newKey(t)
	signed, line, _ := configsign.SignDocument(k, []byte(doc), 5)
	l := line.String()
	for _, tc := range []struct {
		name, doc string
		line      int
	}{
		{"duplicate", string(signed) + l + "\n", 5},
		{"not last", l + "\n" + doc, 1},
		{"reordered", "gateway_id: x\n" + l + "\nrules: []\n", 2},
		{"blank line after", string(signed) + "\n", 5},
		{"malformed last", doc + "# edgegate-signature: v1 version=x key=00 sig=y\n", 5},
		{"unknown format", doc + "# edgegate-signature: v2 whatever\n", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := configsign.Split([]byte(tc.doc))
			var le *configsign.LineError
			if !errors.As(err, &le) || le.Line != tc.line {
				t.Fatalf("err = %v, want a LineError at line %d", err, tc.line)
			}
		})
	}
	// An indented comment is not a signature line; neither is a mention.
	plain := doc + "  # edgegate-signature: v1 not ours\n# see edgegate-signature docs\n"
	body, got, err := configsign.Split([]byte(plain))
	if err != nil || got != nil || string(body) != plain {
		t.Errorf("Split(plain) = %q, %v, %v", body, got, err)
	}
}

func TestParseLine(t *testing.T) {
	k := newKey(t)
	good, _ := configsign.Sign(k, []byte(doc), 9)
	if l, err := configsign.ParseLine(good.String() + "\r\n"); err != nil || l.String() != good.String() {
		t.Fatalf("ParseLine(good CRLF) = %v, %v", l, err)
	}
	sig := strings.SplitN(good.String(), "sig=", 2)[1]
	id := good.KeyID
	for _, tc := range []struct{ line, want string }{
		{"", "does not start with"},
		{"# edgegate-signature:", "empty"},
		{"# edgegate-signature: v1 version=9 key=" + id, "want 3 fields"},
		{"# edgegate-signature: v1 key=" + id + " version=9 sig=" + sig, "want version="},
		{"# edgegate-signature: v1 version=0 key=" + id + " sig=" + sig, "want an integer > 0"},
		{"# edgegate-signature: v1 version=-3 key=" + id + " sig=" + sig, "want an integer > 0"},
		{"# edgegate-signature: v1 version=09 key=" + id + " sig=" + sig, "want an integer > 0"},
		{"# edgegate-signature: v1 version=99999999999999999999 key=" + id + " sig=" + sig, "want an integer > 0"},
		{"# edgegate-signature: v1 version=9 key=" + strings.ToUpper(id) + " sig=" + sig, "lower-case hex"},
		{"# edgegate-signature: v1 version=9 key=abcd sig=" + sig, "16 lower-case hex"},
		{"# edgegate-signature: v1 version=9 key=" + id + " sig=" + sig + "=", "bad base64url"},
		{"# edgegate-signature: v1 version=9 key=" + id + " sig=AAAA", "3 bytes, want 64"},
	} {
		_, err := configsign.ParseLine(tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseLine(%q) = %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	k, other := newKey(t), newKey(t)
	v := configsign.Verifier{Keys: []configsign.PublicKey{other.Public(), k.Public()}}
	v5, _, _ := configsign.SignDocument(k, []byte(doc), 5)
	body5, _, _ := configsign.Split(v5)
	running := configsign.Running{Version: 5, BodyHash: configsign.BodyHash(body5)}
	newer, _, _ := configsign.SignDocument(k, []byte(doc+"log: {level: debug}\n"), 6)
	older, _, _ := configsign.SignDocument(k, []byte(doc+"log: {level: warn}\n"), 4)
	sameOther, _, _ := configsign.SignDocument(k, []byte(doc+"log: {level: warn}\n"), 5)
	byStranger, _, _ := configsign.SignDocument(newKey(t), []byte(doc), 6)
	tampered := bytes.Replace(newer, []byte("debug"), []byte("error"), 1)

	var verr *configsign.VersionError
	var uerr *configsign.UnknownKeyError
	for _, tc := range []struct {
		name      string
		data      []byte
		policy    configsign.Policy
		wantErr   func(error) bool
		unchanged bool
	}{
		{name: "newer", data: newer},
		{name: "same version and body is a no-op", data: v5, unchanged: true},
		{name: "unsigned", data: []byte(doc), wantErr: func(err error) bool { return errors.Is(err, configsign.ErrUnsigned) }},
		{name: "unsigned trusted", data: []byte(doc), policy: configsign.Policy{Trusted: true}},
		{name: "older", data: older, wantErr: func(err error) bool { return errors.As(err, &verr) && verr.Version == 4 && verr.Running == 5 }},
		{name: "older forced", data: older, policy: configsign.Policy{Force: true}},
		{name: "same version other body", data: sameOther, wantErr: func(err error) bool { return errors.As(err, &verr) && verr.Version == 5 }},
		{name: "unknown key", data: byStranger, wantErr: func(err error) bool { return errors.As(err, &uerr) }},
		{name: "tampered", data: tampered, wantErr: func(err error) bool { return errors.Is(err, configsign.ErrBadSignature) }},
		{name: "tampered trusted", data: tampered, policy: configsign.Policy{Trusted: true}, wantErr: func(err error) bool { return errors.Is(err, configsign.ErrBadSignature) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Check(tc.data, nil, running, tc.policy)
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Unchanged != tc.unchanged {
				t.Errorf("Unchanged = %v, want %v", c.Unchanged, tc.unchanged)
			}
			if bytes.Contains(c.Body, []byte("edgegate-signature")) {
				t.Errorf("Body keeps the signature line: %q", c.Body)
			}
			if c.Signed && c.KeyID != k.Public().ID() {
				t.Errorf("KeyID = %s, want %s", c.KeyID, k.Public().ID())
			}
			if tc.policy.Trusted && !c.Signed && c.Warning == "" {
				t.Error("an unsigned trusted document carries no warning")
			}
		})
	}

	// Detached: the line beside an unsigned document.
	body, line, _ := configsign.Split(newer)
	c, err := v.Check(body, []byte(line.String()+"\n"), running, configsign.Policy{})
	if err != nil || c.Version != 6 || !c.Signed {
		t.Fatalf("detached: %+v, %v", c, err)
	}
	if _, err := v.Check(newer, []byte(configsign.Line{Version: 6, KeyID: line.KeyID, Sig: make([]byte, 64)}.String()), running, configsign.Policy{}); err == nil {
		t.Error("an embedded and a different detached signature were accepted")
	}
	if _, err := v.Check(body, []byte("garbage"), running, configsign.Policy{}); err == nil || !strings.Contains(err.Error(), "detached signature line") {
		t.Errorf("garbage detached signature: err = %v", err)
	}
	// Without keys everything passes unsigned, the line stripped.
	c, err = configsign.Verifier{}.Check(newer, nil, running, configsign.Policy{})
	if err != nil || c.Signed || c.Version != 0 || !bytes.Equal(c.Body, body) {
		t.Errorf("no keys: %+v, %v", c, err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "ops")
	k := newKey(t)
	if err := configsign.WriteKeyPair(base, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v, want 0600", fi.Mode().Perm())
	}
	priv, err := configsign.ReadPrivateKeyFile(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := configsign.ReadPublicKeyFile(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if pub.ID() != k.Public().ID() || priv.Public().ID() != pub.ID() || len(pub.ID()) != 16 {
		t.Errorf("ids: pub %s, priv %s, want %s", pub.ID(), priv.Public().ID(), k.Public().ID())
	}
	raw, _ := os.ReadFile(base + ".pub")
	if !strings.HasPrefix(string(raw), "edgegate-ed25519-public ") || strings.Count(string(raw), "\n") != 1 {
		t.Errorf("public key file = %q", raw)
	}
	if err := configsign.WriteKeyPair(base, newKey(t)); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second WriteKeyPair: err = %v", err)
	}
	if again, _ := configsign.ReadPublicKeyFile(base + ".pub"); again.ID() != pub.ID() {
		t.Error("the refused WriteKeyPair changed the public key")
	}
	// Half a pair also blocks: no new .key beside an old .pub.
	os.Remove(base + ".key")
	if err := configsign.WriteKeyPair(base, newKey(t)); err == nil {
		t.Error("WriteKeyPair overwrote a lone .pub")
	}
	if _, err := os.Stat(base + ".key"); err == nil {
		t.Error("a refused WriteKeyPair left a .key behind")
	}

	for _, tc := range []struct{ in, want string }{
		{"", "does not start with"},
		{k.String(), "is an \"edgegate-ed25519-private\" line"},
		{"edgegate-ed25519-public !!!", "bad base64"},
		{"edgegate-ed25519-public AAAA", "3 bytes, want 32"},
	} {
		if _, err := configsign.ParsePublicKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePublicKey(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := configsign.ParsePrivateKey(pub.String()); err == nil {
		t.Error("ParsePrivateKey accepted a public key")
	}
	os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("a"), 5000), 0o600)
	if _, err := configsign.ReadPublicKeyFile(filepath.Join(dir, "big")); err == nil || !strings.Contains(err.Error(), "not a key file") {
		t.Errorf("big file: %v", err)
	}
}

func FuzzSplit(f *testing.F) {
	k, err := configsign.GenerateKey(bytes.NewReader(make([]byte, 64)))
	if err != nil {
		f.Fatal(err)
	}
	signed, _, _ := configsign.SignDocument(k, []byte(doc), 3)
	f.Add(signed)
	f.Add([]byte(doc))
	f.Add(bytes.ReplaceAll(signed, []byte("\n"), []byte("\r\n")))
	f.Add([]byte("# edgegate-signature: v1 version=1 key=0011223344556677 sig=AA\n"))
	f.Add([]byte("# edgegate-signature:"))
	keys := []configsign.PublicKey{k.Public()}
	f.Fuzz(func(t *testing.T, data []byte) {
		body, line, err := configsign.Split(data)
		if err != nil {
			var le *configsign.LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("error %v is not a LineError with a line", err)
			}
			return
		}
		if !bytes.HasPrefix(data, body) {
			t.Fatal("body is not a prefix of the document")
		}
		if line == nil {
			if len(body) != len(data) {
				t.Fatal("no line but a shorter body")
			}
			return
		}
		if line.Version <= 0 || len(line.Sig) != 64 || len(line.KeyID) != 16 {
			t.Fatalf("accepted line %+v", line)
		}
		// The line reads back the same.
		back, err := configsign.ParseLine(line.String())
		if err != nil || back.String() != line.String() {
			t.Fatalf("round trip of %q: %v", line.String(), err)
		}
		configsign.Verify(keys, body, *line) // must not panic
	})
}
