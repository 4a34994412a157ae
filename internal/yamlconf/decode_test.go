package yamlconf

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testBatch struct {
	MaxEvents int           `yaml:"max_events"`
	MaxBytes  ByteSize      `yaml:"max_bytes"`
	Linger    time.Duration `yaml:"linger"`
}

type testSender struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

func (s *testSender) SetDefaults() { s.URL = "http://default/" }

type testEntry struct {
	Name   string      `yaml:"name"`
	HTTP   *testSender `yaml:"http"`
	Common testCommon  `yaml:",inline"`
}

type testCommon struct {
	Batch testBatch `yaml:"batch"`
	Retry *int      `yaml:"retry"`
}

func (e *testEntry) SetDefaults() { e.Common.Batch = testBatch{MaxEvents: 500, MaxBytes: 1 << 20} }

func (e *testEntry) MovedKey(at Path, key string, sibling func(string) (string, bool)) string {
	switch key {
	case "url":
		return "moved to " + at.Key("http").Key("url").String()
	case "kind":
		v, _ := sibling("name")
		return "the section names the kind of " + v
	}
	return ""
}

type testConfig struct {
	ID      string         `yaml:"id"`
	Timeout time.Duration  `yaml:"timeout"`
	Limit   ByteSize       `yaml:"limit"`
	Entries []testEntry    `yaml:"entries"`
	Tags    []string       `yaml:"tags"`
	Extra   map[string]any `yaml:"extra"`
	Any     any            `yaml:"any"`
	At      time.Time      `yaml:"at"`
	Flag    *bool          `yaml:"flag"`
}

func decodeTest(t *testing.T, src string) (testConfig, []*Error) {
	t.Helper()
	cfg := testConfig{ID: "default-id", Timeout: time.Second, Limit: 40 << 20}
	_, err := Decode("t.yaml", []byte(src), &cfg)
	probs := Problems(err)
	for _, p := range probs {
		if p.File != "t.yaml" || p.Line < 1 || p.Column < 1 {
			t.Errorf("problem not located: %#v", p)
		}
	}
	return cfg, probs
}

func errorLines(probs []*Error) string {
	var b strings.Builder
	for _, p := range probs {
		b.WriteString(p.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestDecodeDefaults(t *testing.T) {
	cfg, probs := decodeTest(t, `
timeout: 0s
entries:
  - name: a
    batch: { max_events: 0 }
  - name: b
    http: { headers: { X: y } }
    retry: 3
tags: [x, y]
extra: { k: [1, two], n: { m: true } }
at: 2026-01-02T03:04:05Z
flag: false
`)
	if len(probs) > 0 {
		t.Fatal(errorLines(probs))
	}
	if cfg.ID != "default-id" || cfg.Timeout != 0 || cfg.Limit != 40<<20 {
		t.Errorf("top level: %+v", cfg)
	}
	a, b := cfg.Entries[0], cfg.Entries[1]
	if a.Common.Batch.MaxEvents != 0 || a.Common.Batch.MaxBytes != 1<<20 || a.HTTP != nil {
		t.Errorf("an explicit 0 must stay 0 and the rest keep defaults: %+v", a)
	}
	if b.Common.Batch.MaxEvents != 500 || b.HTTP == nil || b.HTTP.URL != "http://default/" || b.HTTP.Headers["X"] != "y" || *b.Common.Retry != 3 {
		t.Errorf("second entry: %+v %+v", b, b.HTTP)
	}
	wantExtra := map[string]any{"k": []any{1, "two"}, "n": map[string]any{"m": true}}
	if !reflect.DeepEqual(cfg.Extra, wantExtra) || cfg.At.Day() != 2 || cfg.Flag == nil || *cfg.Flag {
		t.Errorf("extra %#v at %v flag %v", cfg.Extra, cfg.At, cfg.Flag)
	}
}

// Every problem of a file at once, each at its own node, and the rest
// decoded.
func TestDecodeProblems(t *testing.T) {
	src := `id: [x]
timeout: soon
limit: lots
entries:
  - name: a
    url: http://x/
    batch: { max_events: 500, max_bytes: many, linger: 0s }
    kind: x
  - nmae: b
    batch: { max_events: 1.5 }
    name: b
    name: c
tags: { a: 1 }
extra: { k: 1, k: 2 }
`
	cfg, probs := decodeTest(t, src)
	want := []string{
		`t.yaml:1:5: id: must be a string, got a list`,
		`t.yaml:2:10: timeout: must be a duration such as 10s, 1m30s or 2h, got the string "soon"`,
		`t.yaml:3:8: limit: invalid byte size "lots"`,
		`t.yaml:6:5: entries[0].url: moved to entries[0].http.url`,
		`t.yaml:7:42: entries[0].batch.max_bytes: invalid byte size "many"`,
		`t.yaml:8:5: entries[0].kind: the section names the kind of a`,
		`t.yaml:9:5: entries[1].nmae: unknown field "nmae" (did you mean name?)`,
		`t.yaml:10:26: entries[1].batch.max_events: must be an integer, got the number 1.5`,
		`t.yaml:12:5: entries[1].name: duplicate key (first at line 11)`,
		`t.yaml:13:7: tags: must be a list, got a mapping`,
		`t.yaml:14:16: extra.k: duplicate key (first at line 14)`,
	}
	got := errorLines(probs)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q", w)
		}
	}
	if len(probs) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(probs), len(want), got)
	}
	if cfg.Entries[0].Common.Batch.Linger != 0 || cfg.Entries[0].Common.Batch.MaxEvents != 500 || cfg.Entries[1].Name != "b" {
		t.Errorf("the good values around the bad ones must decode: %+v", cfg.Entries)
	}
}

func TestDecodeAliasesAndMerge(t *testing.T) {
	cfg, probs := decodeTest(t, `
base: &base { name: shared, batch: { max_events: 7 } }
entries:
  - <<: *base
    name: own
  - *base
`)
	// base is not a field of testConfig.
	if len(probs) != 1 || probs[0].Path.String() != "base" {
		t.Fatalf("want only the unknown key base:\n%s", errorLines(probs))
	}
	if len(cfg.Entries) != 2 || cfg.Entries[0].Name != "own" || cfg.Entries[0].Common.Batch.MaxEvents != 7 ||
		cfg.Entries[1].Name != "shared" || cfg.Entries[1].Common.Batch.MaxBytes != 1<<20 {
		t.Errorf("entries %+v", cfg.Entries)
	}

	// Nested aliases that would expand a billion-fold stop early.
	bomb := "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
	var v map[string][]any
	_, err := Decode("bomb.yaml", []byte(bomb), &v)
	if err == nil || !strings.Contains(err.Error(), "too many values") {
		t.Fatalf("alias bomb: %v", err)
	}
}

func TestParseDocuments(t *testing.T) {
	doc, err := Parse("empty.yaml", []byte("# nothing yet\n"))
	if err != nil || !doc.Empty() {
		t.Fatalf("comments only: %v %v", doc, err)
	}
	_, err = Parse("two.yaml", []byte("a: 1\n---\nb: 2\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "two.yaml:2:1: a second YAML document") {
		t.Fatalf("two documents: %v", err)
	}
}

// yaml.v3 reports a parser error at the 0-based line of the enclosing
// construct; the problem is found where the parser met it.
func TestSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"gateway_id: gw-1\nuplinks:\n  - name: cloud\n   type: http\n", "s.yaml:4:4: uplinks: syntax error: did not find expected '-' indicator"},
		{"a: 1\nb: c: d\n", "s.yaml:2:5: syntax error: mapping values are not allowed in this context"},
		{"a: 1\nb:\n\tc: 1\n", "s.yaml:3:1: syntax error: found character that cannot start any token"},
		{"a: 1\n- b\n", "s.yaml:2:1: syntax error: did not find expected key"},
		{"a:\n  b: 1\n c: 2\n", "s.yaml:3:2: syntax error: did not find expected key"},
		{"id: gw\nlist:\n  - name: a\n    url: \"http://x/\n", "s.yaml:4:10: list[0]: syntax error: found unexpected end of stream"},
		{"a: &x 1\nb: *y\n", "s.yaml:2:5: syntax error: unknown anchor 'y' referenced"},
		{"a: 1\n---\nb: [\n", "s.yaml:3:4: syntax error: did not find expected node content"},
	} {
		_, err := Parse("s.yaml", []byte(tc.src))
		var e *Error
		if !errors.As(err, &e) || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

func TestLocate(t *testing.T) {
	src := `rules:
  - name: a
    when: data.t > 'x'
    key: "subject + 1"
    set: { data.version: data.t * 2 }
    esc: "a\tb + 1"
    multi: |
      data.t >
        'x'
  - name: b
`
	doc, err := Parse("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r0 := Key("rules").Index(0)
	var l List
	l = append(l,
		&Error{Path: r0.Key("when"), Msg: "mismatched types", ExprColumn: 8},
		&Error{Path: r0.Key("key"), Msg: "bad key", ExprColumn: 9},
		&Error{Path: r0.Key("set").Key("data.version"), Msg: "bad set", ExprColumn: 8},
		&Error{Path: r0.Key("esc"), Msg: "escaped", ExprColumn: 3},
		&Error{Path: r0.Key("multi"), Msg: "multi-line", ExprLine: 2, ExprColumn: 3},
		Errorf(Key("rules").Index(1).Key("actions"), "at least one action is required"),
		Errorf(Key("rules").Index(5), "no such rule"),
		errors.New("not positioned"),
	)
	want := []string{
		"r.yaml:3:18: rules[0].when: mismatched types",
		"r.yaml:4:19: rules[0].key: bad key",
		"r.yaml:5:33: rules[0].set.data.version: bad set",
		"r.yaml:6:10: rules[0].esc: escaped (column 3)",
		"r.yaml:7:12: rules[0].multi: multi-line (expression line 2, column 3)",
		"r.yaml:10:5: rules[1].actions: at least one action is required",
		"r.yaml:2:3: rules[5]: no such rule",
		"r.yaml:1:1: not positioned",
	}
	got := Problems(doc.Locate(l.Err()))
	if len(got) != len(want) {
		t.Fatalf("got %d problems:\n%s", len(got), errorLines(got))
	}
	for i, w := range want {
		if got[i].Error() != w {
			t.Errorf("got  %s\nwant %s", got[i], w)
		}
	}
	if n := doc.Node(r0.Key("set").Key("data.version")); n == nil || n.Value != "data.t * 2" {
		t.Errorf("Node(set.data.version) = %v", n)
	}
}

func TestPath(t *testing.T) {
	p := Key("rules").Index(2).Key("set").Key("data.version")
	if s := p.String(); s != "rules[2].set.data.version" {
		t.Errorf("String = %q", s)
	}
	rest, ok := p.CutPrefix(Key("rules"))
	if !ok || rest.String() != "[2].set.data.version" {
		t.Errorf("CutPrefix = %q %v", rest, ok)
	}
	if _, ok := p.CutPrefix(Key("rule")); ok {
		t.Error("CutPrefix matched another key")
	}
	q := Key("a")
	_ = q.Key("b")
	if c := q.Key("c").String(); c != "a.c" {
		t.Errorf("paths share steps: %q", c)
	}
}

func TestListNest(t *testing.T) {
	var inner List
	inner.Add(Key("url"), "is required")
	var l List
	l.Nest(Key("uplinks").Index(1), errors.Join(inner.Err(), errors.New("plain")))
	got := errorLines(Problems(l.Err()))
	if got != "uplinks[1].url: is required\nuplinks[1]: plain\n" {
		t.Errorf("got %q", got)
	}
}

// FuzzDecode: any bytes decode into a config or give located problems;
// never a panic.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"id: x\nentries: [{name: a, batch: {max_events: 1}}]\n",
		"entries:\n  - url: x\n    <<: {name: y}\n",
		"a: &a [1]\nb: *a\n",
		"limit: 1.5GiB\ntimeout: 1s\nat: 2026-01-01T00:00:00Z\n",
		"id: \"x\n",
		"- a\n- b\n",
		"extra: {k: {l: [1, {m: 2}]}}\nany: [x]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg testConfig
		doc, err := Decode("f.yaml", data, &cfg)
		for _, p := range Problems(err) {
			if p.File != "f.yaml" || p.Line < 1 || p.Column < 1 {
				t.Fatalf("problem not located: %#v", p)
			}
		}
		if doc != nil {
			doc.Locate(Errorf(Key("entries").Index(0).Key("batch"), "x"))
		}
	})
}
