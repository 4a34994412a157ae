package configsign

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The first word of each key file's line.
const (
	privatePrefix = "edgegate-ed25519-private"
	publicPrefix  = "edgegate-ed25519-public"
)

// maxKeyFile bounds what a key file may hold: one line of text.
const maxKeyFile = 4 << 10

// PublicKey is an ed25519 public key with its key id.
type PublicKey struct {
	key ed25519.PublicKey
	id  string
}

// ID is the key id: the first 8 bytes of SHA-256 of the key, in hex.
func (k PublicKey) ID() string { return k.id }

// String is the key file's line: "edgegate-ed25519-public <base64>".
func (k PublicKey) String() string {
	return publicPrefix + " " + base64.StdEncoding.EncodeToString(k.key)
}

// PrivateKey is an ed25519 private key.
type PrivateKey struct {
	key ed25519.PrivateKey
}

// Public returns the key's public half.
func (k PrivateKey) Public() PublicKey { return newPublicKey(k.key.Public().(ed25519.PublicKey)) }

// String is the key file's line: "edgegate-ed25519-private <base64 seed>".
func (k PrivateKey) String() string {
	return privatePrefix + " " + base64.StdEncoding.EncodeToString(k.key.Seed())
}

// GenerateKey makes a key pair from rand (crypto/rand.Reader when nil).
func GenerateKey(rand io.Reader) (PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return PrivateKey{key: priv}, nil
}

func newPublicKey(k ed25519.PublicKey) PublicKey {
	sum := sha256.Sum256(k)
	return PublicKey{key: k, id: hex.EncodeToString(sum[:8])}
}

// ParsePublicKey reads a public key from its line,
// "edgegate-ed25519-public <base64>" (surrounding space ignored).
func ParsePublicKey(s string) (PublicKey, error) {
	b, err := parseKeyLine(s, publicPrefix, ed25519.PublicKeySize)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key: %w", err)
	}
	return newPublicKey(ed25519.PublicKey(b)), nil
}

// ParsePrivateKey reads a private key from its line,
// "edgegate-ed25519-private <base64 seed>" (surrounding space ignored).
func ParsePrivateKey(s string) (PrivateKey, error) {
	b, err := parseKeyLine(s, privatePrefix, ed25519.SeedSize)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("private key: %w", err)
	}
	return PrivateKey{key: ed25519.NewKeyFromSeed(b)}, nil
}

// parseKeyLine checks the prefix and decodes the base64 word after it,
// which must be size bytes long.
func parseKeyLine(s, prefix string, size int) ([]byte, error) {
	s = strings.TrimSpace(s)
	word, rest, ok := strings.Cut(s, " ")
	if word != prefix || !ok {
		other := publicPrefix
		if prefix == publicPrefix {
			other = privatePrefix
		}
		if word == other {
			return nil, fmt.Errorf("is an %q line, want %q", other, prefix)
		}
		return nil, fmt.Errorf("does not start with %q", prefix)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return nil, fmt.Errorf("bad base64: %w", err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, nil
}

// ReadPublicKeyFile reads a NAME.pub file.
func ReadPublicKeyFile(path string) (PublicKey, error) { return readKey(path, ParsePublicKey) }

// ReadPrivateKeyFile reads a NAME.key file.
func ReadPrivateKeyFile(path string) (PrivateKey, error) { return readKey(path, ParsePrivateKey) }

// readKey reads a key file and parses its line; errors name the file.
func readKey[K any](path string, parse func(string) (K, error)) (K, error) {
	var zero K
	s, err := readKeyFile(path)
	if err != nil {
		return zero, err
	}
	k, err := parse(s)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%s: larger than %d bytes: not a key file", path, maxKeyFile)
	}
	return string(b), nil
}

// WriteKeyPair writes base.key (mode 0600) and base.pub (mode 0644) for k.
// It refuses to overwrite either file, and leaves neither behind when it
// fails.
func WriteKeyPair(base string, k PrivateKey) error {
	priv, pub := base+".key", base+".pub"
	for _, p := range []string{priv, pub} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists: refusing to overwrite a key", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := writeNew(priv, k.String()+"\n", 0o600); err != nil {
		return err
	}
	if err := writeNew(pub, k.Public().String()+"\n", 0o644); err != nil {
		os.Remove(priv)
		return err
	}
	return nil
}

// writeNew creates path (failing if it exists) with mode and data, synced.
func writeNew(path, data string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
