package configsign

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// domain starts every signed message, so a signature over a configuration
// is never valid for anything else an ed25519 key might sign.
const domain = "edgegate-config-v1\n"

// message is what is signed: domain, version, a line break, the body.
func message(body []byte, version int64) []byte {
	m := make([]byte, 0, len(domain)+21+len(body))
	m = append(m, domain...)
	m = strconv.AppendInt(m, version, 10)
	m = append(m, '\n')
	return append(m, body...)
}

// Sign signs body (a document without its signature line) as version,
// which must be > 0.
func Sign(k PrivateKey, body []byte, version int64) (Line, error) {
	if version <= 0 {
		return Line{}, fmt.Errorf("version %d: must be > 0", version)
	}
	return Line{Version: version, KeyID: k.Public().ID(), Sig: ed25519.Sign(k.key, message(body, version))}, nil
}

// SignDocument signs doc as version and returns it with the signature as
// its last line, replacing a signature line it had. A document whose last
// line has no line break gets one first, since the signed body is what
// Split will return.
func SignDocument(k PrivateKey, doc []byte, version int64) ([]byte, Line, error) {
	body, _, err := Split(doc)
	if err != nil {
		return nil, Line{}, err
	}
	body = terminated(body)
	l, err := Sign(k, body, version)
	if err != nil {
		return nil, Line{}, err
	}
	return embed(body, l), l, nil
}

// Errors of Verify and Check that callers branch on.
var (
	// ErrUnsigned: keys are configured and the document has no signature.
	ErrUnsigned = errors.New("config is not signed: the gateway accepts only configs signed with one of its public keys")
	// ErrBadSignature: the signature does not match the body and version.
	ErrBadSignature = errors.New("bad signature: the document or its version was changed after signing, or it was signed with another key with the same id")
)

// UnknownKeyError is a signature by a key the gateway does not have.
type UnknownKeyError struct {
	KeyID string
	Known []string // the ids of the configured keys
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("signed with unknown key %s (configured keys: %v)", e.KeyID, e.Known)
}

// VersionError is a signed document whose version is not newer than the
// running one: older, or equal with another body. It is a conflict with
// the running state (HTTP 409), not a bad request.
type VersionError struct {
	Version, Running int64
}

func (e *VersionError) Error() string {
	if e.Version == e.Running {
		return fmt.Sprintf("version %d is already running with a different body: sign the new document with a newer version", e.Version)
	}
	return fmt.Sprintf("version %d is older than the running version %d (only a local operator may go back, with force)", e.Version, e.Running)
}

// Verify checks line's signature over body with the key it names among
// keys, and returns the signed version.
func Verify(keys []PublicKey, body []byte, line Line) (int64, error) {
	for _, k := range keys {
		if k.id != line.KeyID {
			continue
		}
		if !ed25519.Verify(k.key, message(body, line.Version), line.Sig) {
			return 0, ErrBadSignature
		}
		return line.Version, nil
	}
	known := make([]string, len(keys))
	for i, k := range keys {
		known[i] = k.id
	}
	return 0, &UnknownKeyError{KeyID: line.KeyID, Known: known}
}

// BodyHash is the SHA-256 (hex) of a body: what Running.BodyHash holds.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Verifier checks documents against the configured public keys. The zero
// Verifier (no keys) accepts every document unsigned.
type Verifier struct {
	Keys []PublicKey
}

// Running is what the gateway runs: the signed version (0 when unsigned)
// and the BodyHash of its body.
type Running struct {
	Version  int64
	BodyHash string
}

// Policy says how far a document's source is trusted.
type Policy struct {
	// Force accepts an older or equal version (a local operator going back;
	// never for a remote source).
	Force bool
	// Trusted accepts an unsigned document (the start-up file: whoever can
	// write it can replace the binary); Checked.Warning says so.
	Trusted bool
}

// Checked is the outcome of a Check that passed.
type Checked struct {
	Body     []byte // the document without its signature line
	BodyHash string // BodyHash(Body)
	Signed   bool   // verified with one of the keys
	Version  int64  // the signed version; 0 when not Signed
	KeyID    string // the key that signed it
	// Unchanged: the same version and body as the running config: applying
	// it is a successful no-op (a retained MQTT config, a repeated pull).
	Unchanged bool
	// Warning is set when a trusted document is unsigned while keys are
	// configured.
	Warning string
}

// Check verifies a document (data, with an embedded signature line or a
// detached one in detached, which may be empty) against v's keys and the
// running config. With keys configured a document must be signed by one of
// them (ErrUnsigned, *UnknownKeyError, ErrBadSignature, *LineError) and, unless
// p.Force, newer than running (*VersionError); the same version and body
// as running is Unchanged. Without keys the signature is not checked:
// the body is data without a signature line, and Version is 0.
func (v Verifier) Check(data, detached []byte, running Running, p Policy) (Checked, error) {
	body, line, err := Split(data)
	if err != nil {
		return Checked{}, err
	}
	if len(detached) > 0 {
		d, err := ParseLine(string(detached))
		if err != nil {
			return Checked{}, fmt.Errorf("detached %w", err)
		}
		if line != nil && line.String() != d.String() {
			return Checked{}, &LineError{Line: 1, Msg: "the document has an embedded signature and a different detached one"}
		}
		line = &d
	}
	c := Checked{Body: body, BodyHash: BodyHash(body)}
	if len(v.Keys) == 0 {
		return c, nil
	}
	if line == nil {
		if p.Trusted {
			c.Warning = "config is not signed but public keys are configured: only the start-up file is accepted unsigned"
			return c, nil
		}
		return Checked{}, ErrUnsigned
	}
	if c.Version, err = Verify(v.Keys, body, *line); err != nil {
		return Checked{}, err
	}
	c.Signed, c.KeyID = true, line.KeyID
	switch {
	case c.Version == running.Version && c.BodyHash == running.BodyHash:
		c.Unchanged = true
	case c.Version <= running.Version && !p.Force:
		return Checked{}, &VersionError{Version: c.Version, Running: running.Version}
	}
	return c, nil
}
