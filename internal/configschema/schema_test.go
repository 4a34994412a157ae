package configschema

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// exampleConfig is the root of a small configuration for the tests.
type exampleConfig struct {
	// Name names the example; see also MaxSize.
	Name string `yaml:"name"`
	// MaxSize bounds the size.
	MaxSize yamlconf.ByteSize `yaml:"max_size"`
	// Every is the period.
	Every time.Duration `yaml:"every"`
	// Items are the items.
	Items []exampleItem `yaml:"items"`
	// Labels are added to everything.
	Labels map[string]string `yaml:"labels"`
	// Hidden is not read from YAML.
	Hidden        string `yaml:"-"`
	exampleInline `yaml:",inline"`
}

// exampleInline holds keys at its parent's level.
type exampleInline struct {
	// Mode is fast or slow.
	Mode string `yaml:"mode"`
}

// exampleItem is one item; its defaults come from SetDefaults.
type exampleItem struct {
	// ID identifies the item.
	ID string `yaml:"id"`
	// Weight weighs it.
	Weight int `yaml:"weight"`
	// On switches it on.
	On *bool `yaml:"on"`
}

func (i *exampleItem) SetDefaults() { i.Weight = 7 }

func exampleOptions() Options {
	return Options{
		Module:   "github.com/edgegate/edgegate/internal/configschema",
		Dir:      ".",
		Default:  exampleConfig{MaxSize: 1 << 20, Every: 90 * time.Second, exampleInline: exampleInline{Mode: "fast"}},
		Enums:    map[Field][]any{FieldOf[exampleInline]("Mode"): {"fast", "slow"}},
		Required: map[reflect.Type][]string{reflect.TypeFor[exampleItem](): {"id"}},
	}
}

func TestGenerate(t *testing.T) {
	s, err := Generate(reflect.TypeFor[exampleConfig](), exampleOptions())
	if err != nil {
		t.Fatal(err)
	}
	data, err := s.JSON("example")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Schema     string                     `json:"$schema"`
		Properties map[string]json.RawMessage `json:"properties"`
		Additional *bool                      `json:"additionalProperties"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if got.Schema != draft07 || got.Additional == nil || *got.Additional {
		t.Errorf("$schema %q, additionalProperties %v: want draft-07, false", got.Schema, got.Additional)
	}
	// Keys are the yaml tags in field order, inline keys at the parent's
	// level, "-" left out.
	var keys []string
	for _, p := range s.Props {
		keys = append(keys, p.Key)
	}
	if want := "name max_size every items labels mode"; strings.Join(keys, " ") != want {
		t.Errorf("keys %v, want %s", keys, want)
	}
	for _, tc := range []struct{ key, want string }{
		{"name", `"description":"name names the example; see also max_size."`},
		{"name", `"markdownDescription":"` + "`name`" + ` names the example; see also ` + "`max_size`" + `."`},
		{"max_size", `"default":"1MiB"`},
		{"max_size", `"oneOf":[`},
		{"every", `"default":"90s"`},
		{"every", `"pattern":`},
		{"mode", `"enum":["fast","slow"]`},
		{"items", `"required":["id"]`},
		{"items", `"weight":{"default":7,"description":"weight weighs it.","markdownDescription":"` + "`weight`" + ` weighs it.","type":"integer"}`},
		{"items", `"on":{"description":"on switches it on.","markdownDescription":"` + "`on`" + ` switches it on.","type":["boolean","null"]}`},
		{"labels", `"additionalProperties":{"type":"string"}`},
	} {
		raw := string(compact(t, got.Properties[tc.key]))
		if !strings.Contains(raw, tc.want) {
			t.Errorf("%s: %s\nwant it to contain %s", tc.key, raw, tc.want)
		}
	}
	md := string(s.Markdown("Example"))
	for _, want := range []string{"### `items[].id`\n\n*string · required*", "### `max_size`\n\n*byte size · default `1MiB`*", "### `mode`\n\n*string · default `fast` · one of `fast`, `slow`*"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func compact(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return b
}

// undocumented is a configuration with a field that has no comment.
type undocumented struct {
	Bare string `yaml:"bare"`
}

// What the types do not say, or say no longer, is an error.
func TestGenerateErrors(t *testing.T) {
	o := exampleOptions()
	o.Enums[FieldOf[exampleItem]("Gone")] = []any{"x"}
	o.Required[reflect.TypeFor[undocumented]()] = []string{"bare"}
	o.OneOf = map[reflect.Type][]string{reflect.TypeFor[exampleItem](): {"id", "gone"}}
	o.RequiredWhen = map[reflect.Type][]When{reflect.TypeFor[exampleItem](): {{Key: "id", Values: []any{"x"}, Require: "lost"}}}
	_, err := Generate(reflect.TypeFor[exampleConfig](), o)
	for _, want := range []string{"Enums: configschema.exampleItem.Gone is not a field", "Required: configschema.undocumented is not a type",
		`OneOf: configschema.exampleItem has no key "gone"`, `RequiredWhen: configschema.exampleItem has no key "lost"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	_, err = Generate(reflect.TypeFor[undocumented](), Options{Module: o.Module, Dir: "."})
	if err == nil || !strings.Contains(err.Error(), "bare has no description") {
		t.Errorf("error %v, want bare has no description", err)
	}
}

// The duration pattern accepts what time.ParseDuration does, but a sign.
func TestDurationPattern(t *testing.T) {
	re := regexp.MustCompile(durationPattern)
	for _, s := range []string{"0", "10s", "1m30s", "1.5h", ".5s", "200ms", "3us", "3µs", "1h2m3s4ms5us6ns", "5", "-1s", "+1s", "1d", "", "s", "1.s", "1 s"} {
		_, err := time.ParseDuration(s)
		ok := err == nil && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "+")
		if re.MatchString(s) != ok {
			t.Errorf("%q: pattern %v, ParseDuration %v", s, re.MatchString(s), err)
		}
	}
	for d, want := range map[time.Duration]string{168 * time.Hour: "168h", 90 * time.Second: "90s", 200 * time.Millisecond: "200ms", 1500 * time.Microsecond: "1.5ms"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestGoNamesToKeys(t *testing.T) {
	names := map[string]string{"MaxAge": "max_age", "Tokens": "tokens", "TLS": "tls", "Mode": "mode"}
	for in, want := range map[string]string{
		"MaxAge is at most 1h.":                      "`max_age` is at most 1h.",
		"Beyond loopback it needs Tokens, or TLS.":   "Beyond loopback it needs `tokens`, or TLS.",
		"Weights are hashes. Mode: see c.MaxAge.":    "Weights are hashes. Mode: see c.MaxAge.",
		"TLS configures TLS for https:// URLs.":      "`tls` configures TLS for https:// URLs.",
		"Mode is a Mode; after a sentence. Tokens x": "`mode` is a `mode`; after a sentence. Tokens x",
	} {
		self := strings.Fields(in)[0]
		if got := goNamesToKeys(in, self, names); got != want {
			t.Errorf("goNamesToKeys(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMarkdownText(t *testing.T) {
	in := "It is set so:\n\n\ta: 1\n\tb: 2\n\nThen more."
	want := "It is set so:\n\n```\na: 1\nb: 2\n```\n\nThen more."
	if got := markdownText(in); got != want {
		t.Errorf("markdownText = %q, want %q", got, want)
	}
}
