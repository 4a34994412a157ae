package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/configsign"
)

// edgegateCmd runs the binary in dir and returns stdout, stderr and the
// exit code.
func edgegateCmd(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(edgegateBinary(t), args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// keygen and config sign through the binary: the files they write are the
// formats configsign reads, and the signature verifies with the public key.
func TestKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := edgegateCmd(t, dir, "keygen", "--out", "ops")
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	pub, err := configsign.ReadPublicKeyFile(filepath.Join(dir, "ops.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "key id: "+pub.ID()) {
		t.Errorf("keygen output lacks the key id %s: %q", pub.ID(), out)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "ops.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("ops.key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, errOut, code := edgegateCmd(t, dir, "keygen", "--out", "ops"); code != 1 || !strings.Contains(errOut, "refusing to overwrite") {
		t.Errorf("second keygen: exit %d, %q", code, errOut)
	}
	keys := []configsign.PublicKey{pub}
	doc := "log:\n  level: debug\n"
	os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte(doc), 0o640)

	before := time.Now().Unix()
	out, errOut, code = edgegateCmd(t, dir, "config", "sign", "--key", "ops.key", "gw.yaml")
	if code != 0 {
		t.Fatalf("sign: exit %d: %s", code, errOut)
	}
	signed, _ := os.ReadFile(filepath.Join(dir, "gw.yaml"))
	body, line, err := configsign.Split(signed)
	if err != nil || line == nil || string(body) != doc {
		t.Fatalf("signed file %q: %v", signed, err)
	}
	if line.Version < before || line.Version > time.Now().Unix() {
		t.Errorf("default version %d is not the current Unix time", line.Version)
	}
	if _, err := configsign.Verify(keys, body, *line); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "version ") || !strings.Contains(out, pub.ID()) {
		t.Errorf("sign output %q lacks the version and key id", out)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "gw.yaml")); fi.Mode().Perm() != 0o640 {
		t.Errorf("signing in place changed the mode to %v", fi.Mode().Perm())
	}

	// Signing again replaces the line and goes forward even in the same second.
	if _, errOut, code := edgegateCmd(t, dir, "config", "sign", "--key", "ops.key", "gw.yaml"); code != 0 {
		t.Fatalf("second sign: %s", errOut)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "gw.yaml"))
	_, line2, err := configsign.Split(again)
	if err != nil || line2.Version <= line.Version {
		t.Fatalf("re-signed: version %v after %d, %v", line2, line.Version, err)
	}

	// An explicit version, to stdout.
	out, errOut, code = edgegateCmd(t, dir, "config", "sign", "--key", "ops.key", "--version", "7", "-o", "-", "gw.yaml")
	if code != 0 || !strings.HasPrefix(out, doc) || !strings.Contains(out, "version=7 ") || !strings.Contains(errOut, "version 7") {
		t.Errorf("sign to stdout: exit %d, out %q, err %q", code, out, errOut)
	}

	// Detached: the file stays, FILE.sig holds the line.
	os.WriteFile(filepath.Join(dir, "plain.yaml"), []byte(doc), 0o644)
	if _, errOut, code := edgegateCmd(t, dir, "config", "sign", "--key", "ops.key", "--detached", "--version", "9", "plain.yaml"); code != 0 {
		t.Fatalf("detached: %s", errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "plain.yaml")); string(b) != doc {
		t.Errorf("detached signing changed the file: %q", b)
	}
	sig, _ := os.ReadFile(filepath.Join(dir, "plain.yaml.sig"))
	c, err := configsign.Verifier{Keys: keys}.Check([]byte(doc), sig, configsign.Running{}, configsign.Policy{})
	if err != nil || c.Version != 9 {
		t.Errorf("detached signature: %+v, %v", c, err)
	}
	if _, errOut, code := edgegateCmd(t, dir, "config", "sign", "--key", "ops.key", "--detached", "gw.yaml"); code != 1 || !strings.Contains(errOut, "embedded signature") {
		t.Errorf("detached over an embedded signature: exit %d, %q", code, errOut)
	}

	for _, args := range [][]string{
		{"config", "sign", "--key", "ops.key", "--version", "0", "gw.yaml"},
		{"config", "sign", "gw.yaml"},
		{"keygen"},
	} {
		if _, _, code := edgegateCmd(t, dir, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	if _, errOut, code := edgegateCmd(t, dir, "config", "sign", "--key", "ops.pub", "gw.yaml"); code != 1 || !strings.Contains(errOut, "ops.pub: private key: is an \"edgegate-ed25519-public\" line") {
		t.Errorf("signing with the public key: exit %d, %q", code, errOut)
	}
}

// The README's signing commands run as shown and print what it shows (key
// ids and the default version vary).
func TestReadmeSigningCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Signed configs\n")
	if !ok {
		t.Fatal("README has no section Signed configs")
	}
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("the Signed configs section has no sh block")
	}
	dir := t.TempDir()
	for _, f := range []string{"gw-1.yaml", "gw-2.yaml"} {
		os.WriteFile(filepath.Join(dir, f), []byte("gateway_id: "+strings.TrimSuffix(f, ".yaml")+"\n"), 0o644)
	}
	vary := strings.NewReplacer(regexp.QuoteMeta("954e74e15c7a5ab8"), "[0-9a-f]{16}", "1796175663", `\d+`)
	var cmd []string
	var want []string
	run := func() {
		if cmd == nil {
			return
		}
		out, errOut, code := edgegateCmd(t, dir, cmd[1:]...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", cmd, code, errOut)
		}
		re := regexp.MustCompile("^" + vary.Replace(regexp.QuoteMeta(strings.Join(want, "\n"))) + "\n$")
		if !re.MatchString(out) {
			t.Errorf("%v printed\n%s\nthe README shows\n%s", cmd, out, strings.Join(want, "\n"))
		}
		cmd, want = nil, nil
	}
	for _, line := range strings.Split(strings.TrimSpace(block[1]), "\n") {
		if c, ok := strings.CutPrefix(line, "# "); ok {
			want = append(want, c)
			continue
		}
		run()
		cmd = strings.Fields(line)
	}
	run()
	signed, _ := os.ReadFile(filepath.Join(dir, "gw-1.yaml"))
	if _, line, err := configsign.Split(signed); err != nil || line == nil {
		t.Errorf("gw-1.yaml not signed: %q, %v", signed, err)
	}
	sig, _ := os.ReadFile(filepath.Join(dir, "gw-2.yaml.sig"))
	if l, err := configsign.ParseLine(string(sig)); err != nil || l.Version != 1796175700 {
		t.Errorf("gw-2.yaml.sig = %q, %v", sig, err)
	}
}
