package buffer

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestByteSizeYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{"1024", 1024, ""},
		{"512MiB", 512 << 20, ""},
		{"64KB", 64000, ""},
		{"64kb", 64000, ""},
		{"1GB", 1e9, ""},
		{"1.5GiB", 3 << 29, ""},
		{"10 B", 10, ""},
		{`"7"`, 7, ""},
		{"12XB", 0, `"12XB"`},
		{"MiB", 0, `"MiB"`},
		{"1e400", 0, `"1e400"`},
		{"99999999999TiB", 0, "too large"},
		{"[1]", 0, "want an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v struct {
				S ByteSize `yaml:"s"`
			}
			err := yaml.Unmarshal([]byte("s: "+tt.in), &v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || v.S != tt.want {
				t.Fatalf("got %d, %v; want %d", v.S, err, tt.want)
			}
		})
	}
	if s := ByteSize(512 << 20).String(); s != "512MiB" {
		t.Errorf("String = %q", s)
	}
}

func TestConfigYAMLAndValidate(t *testing.T) {
	cfg := DefaultConfig()
	src := "dir: /var/lib/edgegate\nmax_bytes: 1GiB\nmax_age: 24h\noverflow: reject\nmin_free_bytes: 100MB\n"
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{Dir: "/var/lib/edgegate", MaxBytes: 1 << 30, MaxAge: 24 * time.Hour, Overflow: Reject, MinFreeBytes: 100e6}
	if cfg != want {
		t.Fatalf("cfg = %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	bad := Config{MaxBytes: 0, MaxAge: -1, Overflow: "keep", MinFreeBytes: -1}
	err := bad.Validate()
	for _, w := range []string{
		"dir: must be set",
		"max_bytes: must be > 0",
		"max_age: must be > 0",
		`overflow: must be "drop_oldest" or "reject", not "keep"`,
		"min_free_bytes: must be at least 16MiB",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to contain %q", err, w)
		}
	}
}
