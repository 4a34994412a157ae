package access

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashSecretRoundTrip(t *testing.T) {
	h, err := HashSecret([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=4096,t=2,p=1$") {
		t.Errorf("hash %q does not carry the default parameters", h)
	}
	h2, _ := HashSecret([]byte("s3cret"))
	if h == h2 {
		t.Error("two hashes of one secret are equal: the salt is not random")
	}
	for _, tc := range []struct {
		secret string
		want   bool
	}{{"s3cret", true}, {"s3cret ", false}, {"S3cret", false}, {"", false}} {
		ok, err := VerifySecret(h, []byte(tc.secret))
		if err != nil || ok != tc.want {
			t.Errorf("VerifySecret(%q) = %v, %v; want %v", tc.secret, ok, err, tc.want)
		}
	}
	if _, err := HashSecret(nil); err == nil {
		t.Error("HashSecret accepted an empty secret")
	}
	if _, err := HashSecret(make([]byte, maxSecretBytes+1)); err == nil {
		t.Error("HashSecret accepted an oversized secret")
	}
}

func TestVerifySecretBcrypt(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		hash := prefix + string(h[4:])
		if ok, err := VerifySecret(hash, []byte("pw")); !ok || err != nil {
			t.Errorf("%s: VerifySecret = %v, %v", prefix, ok, err)
		}
		if ok, _ := VerifySecret(hash, []byte("px")); ok {
			t.Errorf("%s: a wrong secret verified", prefix)
		}
	}
	// bcrypt compares 72 bytes only; a longer secret never verifies.
	long := strings.Repeat("a", 72)
	h, _ = bcrypt.GenerateFromPassword([]byte(long), bcrypt.MinCost)
	if ok, _ := VerifySecret(string(h), []byte(long+"extra")); ok {
		t.Error("a secret longer than 72 bytes verified against the hash of its prefix")
	}
}

func TestParseHashErrors(t *testing.T) {
	good := "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43)
	if _, err := parseHash(good); err != nil {
		t.Fatalf("good hash refused: %v", err)
	}
	for _, tc := range []struct{ hash, want string }{
		{"", "must be an argon2id"},
		{"plain-password", "must be an argon2id"},
		{"$argon2i$v=19$m=8192,t=1,p=1$c2FsdA$aGFzaA", "only the argon2id"},
		{"$argon2id$v=16$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "version"},
		{"$argon2id$v=19$t=1,m=8192,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "want m="},
		{"$argon2id$v=19$m=8192,t=0,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "t=0 must be between"},
		{"$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "m=4194304 must be between"},
		{"$argon2id$v=19$m=16,t=1,p=4$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "at least 8*p"},
		{"$argon2id$v=19$m=08192,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43), "not a number"},
		{"$argon2id$v=19$m=8192,t=1,p=1$c2FsdA==$" + strings.Repeat("A", 43), "salt"},
		{"$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$AAAA", "key"},
		{"$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0", "malformed"},
		{"$2b$04$short", "malformed bcrypt"},
		{"$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 21) + "\n" + strings.Repeat("A", 22), "control character"},
		{"$2b$20$" + strings.Repeat("a", 53), "cost 20 is above"},
	} {
		_, err := parseHash(tc.hash)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseHash(%q) = %v, want an error containing %q", tc.hash, err, tc.want)
		}
	}
}

// The PHC parser faces the configuration: it never panics, and what it
// accepts it writes back unchanged.
func FuzzParseHash(f *testing.F) {
	for _, s := range []string{
		"$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$2b$04$abcdefghijklmnopqrstuuJ0bBt9eRvuDlbqPHyEjCLpuxHPT4SPm",
		"$argon2id$v=19$m=,t=,p=$$", "$$$$$", "$argon2id$",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHash(s)
		if err != nil {
			return
		}
		if a, ok := h.(argonHash); ok {
			if a.memory > maxArgonMemoryKiB || a.time > maxArgonTime || a.threads > maxArgonThreads {
				t.Fatalf("%q: parameters beyond the bounds accepted", s)
			}
			if a.String() != s {
				t.Fatalf("%q parsed, written back as %q", s, a.String())
			}
		}
	})
}
