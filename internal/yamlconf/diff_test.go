package yamlconf

import (
	"slices"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	type listener struct {
		ID      string `yaml:"id"`
		Address string `yaml:"address"`
	}
	type inner struct {
		Wait time.Duration `yaml:"wait"`
	}
	type section struct {
		Listeners []listener        `yaml:"listeners"`
		Limits    map[string]int    `yaml:"limits"`
		TLS       *listener         `yaml:"tls"`
		Size      ByteSize          `yaml:"size"`
		Inline    inner             `yaml:",inline"`
		Derived   string            `yaml:"-"`
		Labels    map[string]string `yaml:"labels"`
	}
	base := func() section {
		return section{
			Listeners: []listener{{"a", ":1"}, {"b", ":2"}},
			Limits:    map[string]int{"x": 1, "y": 2},
			Size:      10,
			Inline:    inner{Wait: time.Second},
		}
	}
	tests := []struct {
		name   string
		change func(*section)
		want   []string
	}{
		{"equal", func(*section) {}, nil},
		{"leaf in a list", func(s *section) { s.Listeners[1].Address = ":3" }, []string{"listeners[1].address"}},
		{"entry added", func(s *section) { s.Listeners = append(s.Listeners, listener{"c", ":3"}) }, []string{"listeners[2]"}},
		{"entry removed", func(s *section) { s.Listeners = s.Listeners[:1] }, []string{"listeners[1]"}},
		{"map value and key", func(s *section) { s.Limits = map[string]int{"x": 5, "z": 1} }, []string{"limits.x", "limits.y", "limits.z"}},
		{"pointer set", func(s *section) { s.TLS = &listener{} }, []string{"tls"}},
		{"pointer leaf", func(s *section) {}, nil},
		{"self-decoding leaf", func(s *section) { s.Size = 11 }, []string{"size"}},
		{"inline", func(s *section) { s.Inline.Wait = 2 * time.Second }, []string{"wait"}},
		{"derived only", func(s *section) { s.Derived = "x" }, []string{""}},
		{"nil and empty map", func(s *section) { s.Labels = map[string]string{} }, nil},
		{"list emptied", func(s *section) { s.Listeners = nil }, []string{"listeners[0]", "listeners[1]"}},
		{"several in field order", func(s *section) { s.Size = 1; s.Listeners[0].ID = "z" }, []string{"listeners[0].id", "size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			tt.change(&b)
			var got []string
			for _, p := range Diff(a, b) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Diff = %q, want %q", got, tt.want)
			}
		})
	}
	if got := Diff(1, "1"); len(got) != 1 || !got[0].IsRoot() {
		t.Errorf("Diff of different types = %v, want the root", got)
	}
}
