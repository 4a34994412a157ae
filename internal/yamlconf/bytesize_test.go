package yamlconf

import (
	"regexp"
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

// The schema editors get accepts the strings ParseByteSize does (but a
// sign: no size setting may be negative) and refuses the others.
func TestByteSizeSchema(t *testing.T) {
	forms := ByteSize(0).JSONSchema()["oneOf"].([]any)
	re := regexp.MustCompile(forms[1].(map[string]any)["pattern"].(string))
	for _, s := range []string{"1024", "512MiB", "64KB", "64kb", "1GB", "1.5GiB", "10 B", " 7 ", "1k", "2Mi", "3tib", ".5G", "1.", "+5",
		"12XB", "MiB", "", "1e3", "1.2.3", "-5", "5 MiB B", "0x10"} {
		_, err := ParseByteSize(s)
		ok := err == nil && !strings.Contains(s, "-")
		if re.MatchString(s) != ok {
			t.Errorf("%q: pattern %v, ParseByteSize %v", s, re.MatchString(s), err)
		}
	}
}
