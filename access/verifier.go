package access

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"runtime"
	"sync"
	"time"
)

// ErrBusy is returned by Verifier.Verify when no verification slot freed
// up within the wait limit: the client should try again later.
var ErrBusy = errors.New("access: too many secret verifications under way")

// Verifier checks secrets against stored hashes at most Concurrency at a
// time and remembers the successful checks, so that a device reconnecting
// with the secret it used before costs a keyed hash instead of an argon2id
// run. Failed checks are never remembered.
//
// The cache is keyed by HMAC-SHA256, under a key drawn at random when the
// Verifier is made, of the user name, the stored hash and the secret: a
// changed hash or secret is a miss, and the process memory holds no secret
// and no value that can be checked against a guess without that key.
type Verifier struct {
	slots chan struct{}
	wait  time.Duration
	max   int

	key    []byte
	macs   sync.Pool // hash.Hash keyed with key
	mu     sync.Mutex
	cached map[[sha256.Size]byte]struct{}
}

// VerifierOptions configure a Verifier; zero values take the defaults.
type VerifierOptions struct {
	// Concurrency bounds the verifications running at once; default
	// GOMAXPROCS. Each argon2id run holds its m KiB while it runs.
	Concurrency int
	// Wait bounds how long Verify waits for a slot; default 20 s.
	Wait time.Duration
	// MaxCached bounds the remembered successes (about 80 bytes each);
	// default 100,000. When full, an arbitrary one is forgotten.
	MaxCached int
}

// NewVerifier returns a Verifier with a fresh random cache key.
func NewVerifier(o VerifierOptions) *Verifier {
	if o.Concurrency <= 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	if o.Wait <= 0 {
		o.Wait = 20 * time.Second
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 100_000
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("access: crypto/rand failed: " + err.Error()) // rand.Read does not fail on Linux
	}
	v := &Verifier{
		slots:  make(chan struct{}, o.Concurrency),
		wait:   o.Wait,
		max:    o.MaxCached,
		key:    key,
		cached: make(map[[sha256.Size]byte]struct{}),
	}
	v.macs.New = func() any { return hmac.New(sha256.New, v.key) }
	return v
}

// Verify reports whether secret matches the stored hash of user. A success
// is remembered; a remembered success returns at once. Otherwise Verify
// waits for a slot (ErrBusy after the wait limit) and verifies. An
// unparseable hash is an error (Compile has refused those already).
func (v *Verifier) Verify(user, stored string, secret []byte) (bool, error) {
	if len(secret) > maxSecretBytes {
		return false, nil
	}
	k := v.cacheKey(user, stored, secret)
	v.mu.Lock()
	_, hit := v.cached[k]
	v.mu.Unlock()
	if hit {
		return true, nil
	}
	h, err := parseHash(stored)
	if err != nil {
		return false, err
	}
	t := time.NewTimer(v.wait)
	select {
	case v.slots <- struct{}{}:
		t.Stop()
	case <-t.C:
		return false, ErrBusy
	}
	ok := h.verify(secret)
	<-v.slots
	if ok {
		v.remember(k)
	}
	return ok, nil
}

func (v *Verifier) remember(k [sha256.Size]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cached) >= v.max {
		for old := range v.cached { // map order is random: forget any one
			delete(v.cached, old)
			break
		}
	}
	v.cached[k] = struct{}{}
}

// cacheKey is HMAC(key, len(user) user len(stored) stored secret).
func (v *Verifier) cacheKey(user, stored string, secret []byte) [sha256.Size]byte {
	m := v.macs.Get().(hash.Hash)
	defer v.macs.Put(m)
	m.Reset()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(user)))
	m.Write(n[:])
	m.Write([]byte(user))
	binary.BigEndian.PutUint32(n[:], uint32(len(stored)))
	m.Write(n[:])
	m.Write([]byte(stored))
	m.Write(secret)
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// cachedCount is the number of remembered successes (tests).
func (v *Verifier) cachedCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.cached)
}
