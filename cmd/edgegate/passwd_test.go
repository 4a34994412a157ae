package main

import (
	"context"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/access"
)

func TestPasswd(t *testing.T) {
	ctx := context.Background()
	var out, errOut strings.Builder
	if err := runCmd(ctx, []string{"passwd"}, strings.NewReader("s3cret pass\r\nignored\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSuffix(out.String(), "\n")
	if ok, err := access.VerifySecret(hash, []byte("s3cret pass")); !ok || err != nil {
		t.Errorf("printed hash %q does not verify the first line of stdin: %v", hash, err)
	}

	out.Reset()
	if err := runCmd(ctx, []string{"passwd", "--generate"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || len(lines[0]) != 32 {
		t.Fatalf("output:\n%s", out.String())
	}
	if ok, _ := access.VerifySecret(lines[1], []byte(lines[0])); !ok {
		t.Error("the generated secret does not verify against its hash")
	}

	// With --user, stdout is a users entry and nothing else.
	out.Reset()
	errOut.Reset()
	if err := runCmd(ctx, []string{"passwd", "--generate", "--user", "door-1"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	secret, ok := strings.CutPrefix(strings.TrimSpace(errOut.String()), "secret for door-1: ")
	if len(lines) != 2 || lines[0] != `- username: "door-1"` || !strings.HasPrefix(lines[1], `  password_hash: "$argon2id$`) || !ok {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	hash = strings.TrimSuffix(strings.TrimPrefix(lines[1], `  password_hash: "`), `"`)
	if ok, _ := access.VerifySecret(hash, []byte(secret)); !ok {
		t.Error("the generated secret does not verify against its hash")
	}

	for _, tc := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"s3cret"}, "", "usage"},
		{nil, "\n", "empty secret"},
		{nil, "", "empty secret"},
		{nil, strings.Repeat("x", 5000), "at most 4 KiB"},
	} {
		err := runCmd(ctx, append([]string{"passwd"}, tc.args...), strings.NewReader(tc.stdin), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("passwd %q <%.10q: err = %v, want %q", tc.args, tc.stdin, err, tc.want)
		}
	}
	errOut.Reset()
	if code := execute(ctx, []string{"passwd", "s3cret"}, app{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}); code != 2 ||
		!strings.Contains(errOut.String(), "never taken from the command line") {
		t.Errorf("an argument is not refused with a reason: exit %d\n%s", code, errOut.String())
	}
}
