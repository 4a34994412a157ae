package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegate/edgegate/access"
	"github.com/edgegate/edgegate/internal/ratelog"
)

// tokenVerifier reports whether secret is the token whose hash (as
// `edgegate passwd` prints it) is hash. An error means the hash cannot be
// used. It may be slow (a memory-hard hash, by design) and is called
// concurrently.
type tokenVerifier func(hash string, secret []byte) (bool, error)

// adminTokenVerifier returns the verifier of admin tokens: the same code as
// device secrets, owned by package access.
func adminTokenVerifier() tokenVerifier { return access.VerifySecret }

const (
	// adminTokenCacheSize bounds the verified tokens remembered: a handful
	// of scrapers and operators each present one.
	adminTokenCacheSize = 32
	// maxAdminTokenWaiters bounds the requests waiting for a slow
	// verification; more are answered 429 at once, so a flood of wrong
	// tokens costs one core and bounded memory.
	maxAdminTokenWaiters = 32
	// adminFailureLogInterval is how often authentication failures are
	// logged at most (with a count).
	adminFailureLogInterval = 10 * time.Second
)

var (
	errInvalidToken = errors.New("invalid token")
	errAuthBusy     = errors.New("too many token verifications waiting")
)

// adminAuth checks the bearer tokens of admin requests against
// admin.tokens. A token that verified once is remembered by a keyed hash
// (HMAC-SHA-256 with a per-process random key, so the cache never holds
// the token and a memory dump tells nothing about it), so a scraper's
// repeated requests cost one HMAC each; only an unknown token pays for the
// slow hash, one verification at a time. A reload with other tokens builds
// a new adminAuth, with an empty cache.
type adminAuth struct {
	tokens  []AdminToken
	verify  tokenVerifier
	key     [32]byte
	badHash *ratelog.Limiter

	slow    chan struct{} // a slot for one slow verification
	waiting atomic.Int32

	mu    sync.Mutex
	cache [adminTokenCacheSize]cachedToken
	next  int // the slot the next verified token takes (round robin)
}

// cachedToken is a verified token: its keyed hash and the name it has.
type cachedToken struct {
	mac  [sha256.Size]byte
	name string // "" in an unused slot
}

// newAdminAuth returns the checker of tokens, or nil when tokens is empty
// (the routes are open). It fails when tokens need a verifier and there is
// none.
func newAdminAuth(tokens []AdminToken, verify tokenVerifier, log *slog.Logger) (*adminAuth, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	if verify == nil {
		return nil, errors.New("admin.tokens: this build cannot verify token hashes")
	}
	a := &adminAuth{
		tokens:  tokens,
		verify:  verify,
		badHash: ratelog.New(log, slog.LevelError, "admin token hash unusable: fix admin.tokens", adminFailureLogInterval),
		slow:    make(chan struct{}, 1),
	}
	if _, err := rand.Read(a.key[:]); err != nil {
		return nil, err
	}
	return a, nil
}

// check returns the name of the token, or errInvalidToken, errAuthBusy or
// ctx's error. Comparisons with remembered tokens take the same time
// whichever matches, or none.
func (a *adminAuth) check(ctx context.Context, token []byte) (string, error) {
	m := hmac.New(sha256.New, a.key[:])
	m.Write(token)
	var mac [sha256.Size]byte
	m.Sum(mac[:0])
	if name := a.lookup(&mac); name != "" {
		return name, nil
	}
	if a.waiting.Add(1) > maxAdminTokenWaiters {
		a.waiting.Add(-1)
		return "", errAuthBusy
	}
	select {
	case a.slow <- struct{}{}:
		a.waiting.Add(-1)
	case <-ctx.Done():
		a.waiting.Add(-1)
		return "", ctx.Err()
	}
	defer func() { <-a.slow }()
	// Another request may have verified the same token while this one
	// waited.
	if name := a.lookup(&mac); name != "" {
		return name, nil
	}
	for _, t := range a.tokens {
		ok, err := a.verify(t.Hash, token)
		if err != nil {
			a.badHash.Log("token", t.Name, "err", err)
			continue
		}
		if ok {
			a.remember(&mac, t.Name)
			return t.Name, nil
		}
	}
	return "", errInvalidToken
}

// lookup returns the name of a remembered token with keyed hash mac, or
// "". It compares every slot, in constant time each.
func (a *adminAuth) lookup(mac *[sha256.Size]byte) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	found := -1
	for i := range a.cache {
		eq := subtle.ConstantTimeCompare(a.cache[i].mac[:], mac[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return ""
	}
	return a.cache[found].name
}

// remember stores a verified token, replacing the oldest when full.
func (a *adminAuth) remember(mac *[sha256.Size]byte, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cache[a.next] = cachedToken{mac: *mac, name: name}
	a.next = (a.next + 1) % len(a.cache)
}

// stop writes what its rate-limited log holds.
func (a *adminAuth) stop() {
	if a != nil {
		a.badHash.Stop()
	}
}

// authProblem is why a request has no valid token.
type authProblem int

const (
	authOK          authProblem = iota
	authMissing                 // no Authorization header
	authOtherScheme             // an Authorization header of another scheme
	authMalformed               // a Bearer header that is not one b64token
	authInvalid                 // a well-formed token that is not one of admin.tokens
)

// reason is the problem's label of edgegate_admin_auth_failures_total.
func (p authProblem) reason() string {
	switch p {
	case authMissing:
		return "missing"
	case authOtherScheme, authMalformed:
		return "malformed"
	default:
		return "invalid"
	}
}

// challenge is the WWW-Authenticate header of the 401 answer (RFC 6750
// §3): without an error code when the request had no Bearer credentials,
// invalid_request for a malformed one, invalid_token for a wrong one.
func (p authProblem) challenge() string {
	const c = `Bearer realm="edgegate admin"`
	switch p {
	case authMalformed:
		return c + `, error="invalid_request"`
	case authInvalid:
		return c + `, error="invalid_token"`
	default:
		return c
	}
}

// maxAdminTokenLen bounds a presented token; a longer one is malformed.
const maxAdminTokenLen = 512

// parseBearer takes the token from the values of a request's Authorization
// headers: exactly one header, the scheme "Bearer" (any case), one or more
// spaces and a b64token (RFC 6750 §2.1: letters, digits, "-._~+/", then
// any "="), at most maxAdminTokenLen bytes.
func parseBearer(values []string) (string, authProblem) {
	switch {
	case len(values) == 0 || len(values) == 1 && values[0] == "":
		return "", authMissing
	case len(values) > 1:
		return "", authMalformed
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", authOtherScheme
	}
	token := strings.TrimLeft(rest, " ")
	if len(token) > maxAdminTokenLen || !isB64Token(token) {
		return "", authMalformed
	}
	return token, authOK
}

// isB64Token reports whether s is an RFC 6750 b64token.
func isB64Token(s string) bool {
	end := len(strings.TrimRight(s, "="))
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
