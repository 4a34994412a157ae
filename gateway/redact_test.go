package gateway

import (
	"strings"
	"testing"
)

// GET /v1/config shows every secret as <redacted>: tokens, passwords,
// hashes, header values; file paths, names and comments stay.
func TestRedactDocument(t *testing.T) {
	doc := `# the gateway on site 17
admin:
  tokens: [{name: ops, hash: "$argon2id$secret-hash-1"}]
auth:
  users:
    - {username: dev1, password_hash: "$2b$secret-hash-2"}
uplinks:
  - name: cloud
    http:
      url: https://cloud.example/ingest
      headers: {Authorization: "Bearer secret-header-3", X-Site: secret-site-4}
      auth: {bearer_token: secret-token-5, bearer_token_file: /etc/edgegate/token}
  - name: broker
    mqtt: {url: "ssl://b:8883", auth: {basic: {username: gw, password: secret-password-6}}}
`
	out, err := redactDocument([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "secret-") {
		t.Errorf("a secret survived:\n%s", s)
	}
	for _, want := range []string{"# the gateway on site 17", "name: ops", "username: dev1", "url: https://cloud.example/ingest",
		"bearer_token_file: /etc/edgegate/token", "Authorization: <redacted>", "password: <redacted>", "username: gw"} {
		if !strings.Contains(s, want) {
			t.Errorf("redacted document lacks %q:\n%s", want, s)
		}
	}
}

func FuzzRedactDocument(f *testing.F) {
	f.Add([]byte("uplinks: [{http: {auth: {bearer_token: x}}}]"))
	f.Add([]byte("a: &x {password: p}\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := redactDocument(data)
		if err != nil {
			return
		}
		if _, err := redactDocument(out); err != nil {
			t.Fatalf("the redacted document does not parse: %v\n%s", err, out)
		}
	})
}
