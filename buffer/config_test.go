package buffer

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

func TestConfigYAMLAndValidate(t *testing.T) {
	cfg := DefaultConfig()
	src := "dir: /var/lib/edgegate\nmax_bytes: 1GiB\nmax_age: 24h\noverflow: reject\nmin_free_bytes: 100MB\ncommit_interval: 2ms\n"
	if _, err := yamlconf.Decode("buffer.yaml", []byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{Dir: "/var/lib/edgegate", MaxBytes: 1 << 30, MaxAge: 24 * time.Hour, Overflow: Reject, MinFreeBytes: 100e6, CommitInterval: 2 * time.Millisecond}
	if cfg != want {
		t.Fatalf("cfg = %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	bad := Config{MaxBytes: 0, MaxAge: -1, Overflow: "keep", MinFreeBytes: -1, CommitInterval: time.Second}
	err := bad.Validate()
	for _, w := range []string{
		"dir: must be set",
		"max_bytes: must be > 0",
		"max_age: must be > 0",
		`overflow: must be "drop_oldest" or "reject", not "keep"`,
		"min_free_bytes: must be at least 16MiB",
		"commit_interval: must be between 0 and 100ms",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to contain %q", err, w)
		}
	}
}
