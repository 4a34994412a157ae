package certfile

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/testpki"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// writePair issues a fresh server certificate named name and returns its
// files.
func writePair(t *testing.T, ca *testpki.CA, name string) (certFile, keyFile string) {
	t.Helper()
	l := ca.Server(t, name)
	return l.CertFile, l.KeyFile
}

// copyFile replaces dst with src's content and moves its mtime on.
func copyFile(t *testing.T, src, dst string, ahead time.Duration) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(ahead)
	os.Chtimes(dst, future, future)
}

// due makes the next Certificate look at the files again.
func (p *Pair) due() {
	p.mu.Lock()
	p.checked = time.Time{}
	p.mu.Unlock()
}

func TestPairReload(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := writePair(t, ca, "first")
	otherCert, otherKey := writePair(t, ca, "second")
	p, err := Open(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Swap in the other pair: not looked at before the recheck is due.
	copyFile(t, otherCert, certFile, time.Minute)
	copyFile(t, otherKey, keyFile, time.Minute)
	if same, _ := p.GetCertificate(nil); !bytes.Equal(same.Certificate[0], first.Certificate[0]) {
		t.Fatal("files looked at before Recheck")
	}
	p.due()
	second, err := p.GetClientCertificate(nil)
	if err != nil || bytes.Equal(first.Certificate[0], second.Certificate[0]) {
		t.Fatalf("certificate not reloaded (err %v)", err)
	}
	// A broken file keeps the last good pair.
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	past := time.Now().Add(2 * time.Minute)
	os.Chtimes(keyFile, past, past)
	p.due()
	third, err := p.Certificate()
	if err != nil || !bytes.Equal(third.Certificate[0], second.Certificate[0]) {
		t.Fatalf("broken key replaced the good pair (err %v)", err)
	}
	// A missing file too.
	os.Remove(certFile)
	p.due()
	if fourth, err := p.Certificate(); err != nil || !bytes.Equal(fourth.Certificate[0], second.Certificate[0]) {
		t.Fatalf("missing certificate replaced the good pair (err %v)", err)
	}
}

// Errors name the field, relative to the tls section, and the file.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := writePair(t, ca, "a")
	_, otherKey := writePair(t, ca, "b")
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name, cert, key, path, msg string
	}{
		{"missing cert", missing, keyFile, "cert_file", missing},
		{"missing key", certFile, missing, "key_file", missing},
		{"wrong key", certFile, otherKey, "key_file", "not a key for tls.cert_file (" + certFile + ", " + otherKey + ")"},
		{"key as cert", keyFile, keyFile, "key_file", "not a key for tls.cert_file"},
	}
	if err := Check("", ""); err != nil {
		t.Errorf("Check of neither: %v", err)
	}
	if err := Check(certFile, keyFile); err != nil {
		t.Errorf("Check of a good pair: %v", err)
	}
	for _, c := range [][3]string{{certFile, "", "key_file: is required with tls.cert_file"}, {"", keyFile, "cert_file: is required with tls.key_file"}} {
		if err := Check(c[0], c[1]); err == nil || err.Error() != c[2] {
			t.Errorf("Check(%q, %q) = %v, want %s", c[0], c[1], err, c[2])
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, load := range []func() error{
				func() error { _, err := Load(tc.cert, tc.key); return err },
				func() error { _, err := Open(tc.cert, tc.key, slog.New(slog.DiscardHandler)); return err },
				func() error { return Check(tc.cert, tc.key) },
			} {
				err := load()
				var ye *yamlconf.Error
				if !errors.As(err, &ye) || ye.Path.String() != tc.path || !strings.Contains(ye.Msg, tc.msg) {
					t.Errorf("got %v, want %s: …%s…", err, tc.path, tc.msg)
				}
				if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----") {
					t.Errorf("error shows key material: %v", err)
				}
			}
		})
	}
}

// LoadCAs reads a CA bundle; a file without certificates is an error.
func TestLoadCAs(t *testing.T) {
	ca := testpki.NewCA(t, "devices CA")
	pool, err := LoadCAs(ca.File)
	if err != nil || !pool.Equal(ca.Pool) {
		t.Errorf("LoadCAs(%s) = %v, %v", ca.File, pool, err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	if _, err := LoadCAs(garbage); err == nil || !strings.Contains(err.Error(), garbage+": no PEM certificates found") {
		t.Errorf("LoadCAs(garbage) = %v", err)
	}
}
