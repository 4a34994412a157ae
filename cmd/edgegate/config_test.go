package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// `edgegate config reference` prints docs/config.md, the reference
// generated from the configuration's types, as the binary embeds it.
func TestConfigReference(t *testing.T) {
	want, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runArgs([]string{"config", "reference"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Error("config reference differs from docs/config.md")
	}
	for _, key := range []string{"### `buffer.max_bytes`", "### `uplinks[].http.url`", "### `rules.rules[].when`"} {
		if !strings.Contains(out.String(), key) {
			t.Errorf("the reference has no %s", key)
		}
	}
	for _, args := range [][]string{{"config"}, {"config", "bogus"}, {"config", "reference", "extra"}} {
		if code := runArgs(args, &out, &errOut); code != 2 {
			t.Errorf("edgegate %s: exit %d, want 2 (usage)", strings.Join(args, " "), code)
		}
	}
	if code := runArgs([]string{"config", "-h"}, &out, &errOut); code != 0 {
		t.Errorf("edgegate config -h: exit %d", code)
	}
}
