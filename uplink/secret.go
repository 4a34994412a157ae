package uplink

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// secretRecheck is how often a secret file's mtime is checked at most.
const secretRecheck = 5 * time.Second

// maxSecretFile bounds the size of a token or password file.
const maxSecretFile = 64 << 10

// validSecret reports whether s can travel in a header or MQTT CONNECT:
// no control characters.
func validSecret(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// readSecretFile reads a token or password file. Errors name the file,
// never its content.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s: larger than %d bytes", path, maxSecretFile)
	}
	v := strings.TrimSpace(string(b))
	switch {
	case v == "":
		return "", fmt.Errorf("%s: is empty", path)
	case !validSecret(v):
		return "", fmt.Errorf("%s: contains control characters", path)
	}
	return v, nil
}

// fileSecret is a secret read from a file and re-read when the file's
// modification time or size changes, checked at most every interval. It
// needs no goroutine: get checks lazily. When the file becomes unreadable or
// invalid, the last good value stays in use and a warning is logged once.
type fileSecret struct {
	path     string
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	value   string
	mod     time.Time
	size    int64
	checked time.Time
	failing bool
}

// newFileSecret reads path once; it fails when the file cannot be used.
func newFileSecret(path string, log *slog.Logger) (*fileSecret, error) {
	fs := &fileSecret{path: path, interval: secretRecheck, log: log}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	v, err := readSecretFile(path)
	if err != nil {
		return nil, err
	}
	fs.value, fs.mod, fs.size, fs.checked = v, st.ModTime(), st.Size(), time.Now()
	return fs, nil
}

// get returns the current secret.
func (f *fileSecret) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.checked) < f.interval {
		return f.value
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err == nil && st.ModTime().Equal(f.mod) && st.Size() == f.size {
		return f.value
	}
	var v string
	if err == nil {
		v, err = readSecretFile(f.path)
	}
	if err != nil {
		if !f.failing {
			f.failing = true
			f.log.Warn("secret file unusable: keeping the previous value", "path", f.path, "err", err)
		}
		return f.value
	}
	if f.failing {
		f.log.Info("secret file usable again", "path", f.path)
	}
	f.failing = false
	if v != f.value {
		f.log.Info("secret file changed: using the new value", "path", f.path)
	}
	f.value, f.mod, f.size = v, st.ModTime(), st.Size()
	return v
}

// recheck makes the next get look at the file again (after a 401).
func (f *fileSecret) recheck() {
	f.mu.Lock()
	f.checked = time.Time{}
	f.mu.Unlock()
}

// secret is a fixed value or a fileSecret.
type secret struct {
	fixed string
	file  *fileSecret
}

func newSecret(value, path string, log *slog.Logger) (secret, error) {
	if path == "" {
		return secret{fixed: value}, nil
	}
	f, err := newFileSecret(path, log)
	if err != nil {
		return secret{}, err
	}
	return secret{file: f}, nil
}

func (s secret) get() string {
	if s.file != nil {
		return s.file.get()
	}
	return s.fixed
}

func (s secret) recheck() {
	if s.file != nil {
		s.file.recheck()
	}
}

// authenticator adds credentials to requests.
type authenticator struct {
	bearer   *secret
	user     string
	password *secret
}

func newAuthenticator(a AuthConfig, log *slog.Logger) (*authenticator, error) {
	au := &authenticator{}
	switch {
	case a.BearerToken != "" || a.BearerTokenFile != "":
		s, err := newSecret(a.BearerToken, a.BearerTokenFile, log)
		if err != nil {
			return nil, fmt.Errorf("auth.bearer_token_file: %w", err)
		}
		au.bearer = &s
	case a.Basic != (BasicAuth{}):
		s, err := newSecret(a.Basic.Password, a.Basic.PasswordFile, log)
		if err != nil {
			return nil, fmt.Errorf("auth.basic.password_file: %w", err)
		}
		au.user, au.password = a.Basic.Username, &s
	default:
		return nil, nil
	}
	return au, nil
}

// authHeader returns the Authorization header value.
func (a *authenticator) authHeader() string {
	if a.bearer != nil {
		return "Bearer " + a.bearer.get()
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.user+":"+a.password.get()))
}

// rejected is called after a 401: re-read secret files at once.
func (a *authenticator) rejected() {
	if a.bearer != nil {
		a.bearer.recheck()
	}
	if a.password != nil {
		a.password.recheck()
	}
}
