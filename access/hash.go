package access

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// The argon2id parameters HashSecret writes, chosen by measurement against
// "5,000 devices connecting with authentication within a minute" on a
// 2-core x86 machine (edgegate bench --auth; README "Devices: authentication
// and access control"). One run costs ~5 ms of one core alone and ~8 ms
// inside the gateway, whose 40 MiB soft memory limit makes the garbage
// collector pay for each run's fresh block: 4 MiB with 2 passes costs that
// collector half what 8 MiB with 1 pass does (~17 ms per connect measured)
// for the same work, and two runs at a time (GOMAXPROCS) hold 8 MiB.
// Secrets from edgegate passwd --generate (192 random bits) do not rely on
// this cost; weak secrets typed by hand do, and stronger hashes from other
// tools are accepted within the bounds below.
const (
	argonMemoryKiB = 4 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltBytes = 16
	argonKeyBytes  = 32
)

// Bounds on the parameters of a stored hash, so that a hash pasted from
// elsewhere cannot make every connect take seconds or exhaust memory.
const (
	maxArgonMemoryKiB = 256 * 1024
	maxArgonTime      = 64
	maxArgonThreads   = 16
	maxBcryptCost     = 16
	bcryptMaxSecret   = 72 // bcrypt ignores what follows
)

// Limits of the secrets HashSecret and VerifySecret take.
const maxSecretBytes = 1024

var errSecretSize = fmt.Errorf("secret must be 1 to %d bytes", maxSecretBytes)

// HashSecret returns an argon2id PHC string of secret with a random salt:
// $argon2id$v=19$m=…,t=…,p=…$salt$key (unpadded standard base64), what
// `edgegate passwd` prints and what password_hash and the admin tokens'
// hash take.
func HashSecret(secret []byte) (string, error) {
	if len(secret) == 0 || len(secret) > maxSecretBytes {
		return "", errSecretSize
	}
	h := argonHash{memory: argonMemoryKiB, time: argonTime, threads: argonThreads, salt: make([]byte, argonSaltBytes)}
	if _, err := rand.Read(h.salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	h.key = h.derive(secret, argonKeyBytes)
	return h.String(), nil
}

// VerifySecret reports whether secret matches hash, an argon2id PHC string
// or a bcrypt hash ($2a$, $2b$, $2y$). It returns an error only when hash
// cannot be parsed or has parameters beyond the accepted bounds. It costs
// what the hash's parameters say, every call: a Verifier bounds and caches.
func VerifySecret(hash string, secret []byte) (bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	return h.verify(secret), nil
}

// storedHash is a parsed password hash.
type storedHash interface {
	verify(secret []byte) bool
}

// parseHash parses an argon2id PHC string or a bcrypt hash.
func parseHash(s string) (storedHash, error) {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' { // base64 decoding would skip a newline
			return nil, errors.New("contains a space, a control character or a non-ASCII byte")
		}
	}
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil || len(s) != 60 {
			return nil, errors.New("malformed bcrypt hash")
		}
		if cost > maxBcryptCost {
			return nil, fmt.Errorf("bcrypt cost %d is above %d (each connect would take seconds)", cost, maxBcryptCost)
		}
		return bcryptHash(s), nil
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("only the argon2id variant of argon2 is accepted")
	default:
		return nil, errors.New(`must be an argon2id ("$argon2id$v=19$…") or bcrypt ("$2b$…") hash, as edgegate passwd prints`)
	}
}

// argonHash is a parsed argon2id PHC string.
type argonHash struct {
	memory    uint32 // KiB
	time      uint32
	threads   uint8
	salt, key []byte
}

func (h argonHash) derive(secret []byte, n int) []byte {
	return argon2.IDKey(secret, h.salt, h.time, h.memory, h.threads, uint32(n))
}

func (h argonHash) verify(secret []byte) bool {
	if len(secret) > maxSecretBytes {
		return false
	}
	return subtle.ConstantTimeCompare(h.derive(secret, len(h.key)), h.key) == 1
}

func (h argonHash) String() string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.memory, h.time, h.threads,
		enc.EncodeToString(h.salt), enc.EncodeToString(h.key))
}

// parseArgon parses $argon2id$v=19$m=M,t=T,p=P$salt$key strictly: version
// 19, the parameters in that order, unpadded standard base64.
func parseArgon(s string) (argonHash, error) {
	var h argonHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, errors.New("malformed argon2id hash: want $argon2id$v=19$m=…,t=…,p=…$salt$key")
	}
	if parts[2] != "v=19" {
		return h, fmt.Errorf("argon2id version %q is not supported (want v=19)", parts[2])
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return h, errors.New("malformed argon2id parameters: want m=…,t=…,p=…")
	}
	m, err1 := param(params[0], "m", 8, maxArgonMemoryKiB)
	t, err2 := param(params[1], "t", 1, maxArgonTime)
	p, err3 := param(params[2], "p", 1, maxArgonThreads)
	if err := errors.Join(err1, err2, err3); err != nil {
		return h, err
	}
	if m < 8*p {
		return h, fmt.Errorf("argon2id m=%d must be at least 8*p=%d", m, 8*p)
	}
	enc := base64.RawStdEncoding.Strict()
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return h, errors.New("argon2id salt must be 8 to 64 bytes of unpadded base64")
	}
	key, err := enc.DecodeString(parts[5])
	if err != nil || len(key) < 8 || len(key) > 64 {
		return h, errors.New("argon2id key must be 8 to 64 bytes of unpadded base64")
	}
	return argonHash{memory: uint32(m), time: uint32(t), threads: uint8(p), salt: salt, key: key}, nil
}

// param parses "name=N" with min <= N <= max, digits only.
func param(s, name string, min, max uint64) (uint64, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, fmt.Errorf("malformed argon2id parameters: want %s=… in its place", name)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || v[0] == '+' || (len(v) > 1 && v[0] == '0') {
		return 0, fmt.Errorf("argon2id %s=%q is not a number", name, v)
	}
	if n < min || n > max {
		return 0, fmt.Errorf("argon2id %s=%d must be between %d and %d", name, n, min, max)
	}
	return n, nil
}

// bcryptHash is a bcrypt hash, checked by x/crypto/bcrypt.
type bcryptHash string

func (h bcryptHash) verify(secret []byte) bool {
	if len(secret) > bcryptMaxSecret { // bcrypt would compare only the first 72 bytes
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(h), secret) == nil
}
