package yamlconf

import (
	"strings"
	"testing"

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
