package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/yamlconf"
	"github.com/edgegate/edgegate/rules"
)

// Every file in configs/ (and configs/interop/) must load as shipped.
func TestShippedConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs found: %v", err)
	}
	more, _ := filepath.Glob("../configs/interop/*.yaml")
	files = append(files, more...)
	for _, f := range files {
		if _, err := LoadFile(f); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}

// Each testdata/*.bad.yaml fails with the lines of its .err file: as many
// errors as lines, each expected line the prefix of one reported error. The files are loaded from
// inside testdata, so errors name them (and the rules files they include)
// without a directory.
func TestBadConfigs(t *testing.T) {
	t.Chdir("testdata")
	files, _ := filepath.Glob("*.bad.yaml")
	if len(files) == 0 {
		t.Fatal("no bad configs")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			want, err := os.ReadFile(f + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, err = LoadFile(f)
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.Split(err.Error(), "\n")
			wantLines := strings.Split(strings.TrimSpace(string(want)), "\n")
			if len(got) != len(wantLines) {
				t.Errorf("%d errors, want %d:\n%s", len(got), len(wantLines), err)
			}
			for _, w := range wantLines {
				found := false
				for _, g := range got {
					if strings.HasPrefix(g, w) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing error %q in:\n%s", w, err)
				}
			}
		})
	}
}

// A rules section in its own file loads as if it were inline: the path is
// relative to the main file's directory and File keeps what was written.
func TestRulesFileInclude(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "include-ok.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Config
	r := cfg.Rules
	if r.File != "include-ok.rules.yaml" || r.MaxKeys != 100 || len(r.Rules) != 1 || r.Rules[0].Name != "version" || len(r.Tests) != 1 {
		t.Fatalf("rules section not read from its file: %+v", r)
	}
	res, err := rules.RunTests(r, []string{cfg.Uplinks[0].Name}, rules.WithGatewayID(cfg.GatewayID))
	if err != nil || len(res) != 1 || res[0].Failed() {
		t.Fatalf("the included tests: %+v, %v", res, err)
	}

	// Errors in an included file name it with its directory, as opened.
	dir := t.TempDir()
	main := filepath.Join(dir, "edgegate.yaml")
	os.WriteFile(main, []byte("gateway_id: gw\nuplinks: [{name: cloud, http: {url: 'http://127.0.0.1:1/'}}]\nrules: {file: r/rules.yaml}\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "r"), 0o755)
	os.WriteFile(filepath.Join(dir, "r", "rules.yaml"), []byte("rules:\n  - name: a\n    when: 1 +\n    actions: [{drop: true}]\n"), 0o644)
	_, err = LoadFile(main)
	want := filepath.Join(dir, "r", "rules.yaml") + ":3:13: rules[0].when: " // col 11 + expr column 3 - 1
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want an error starting %q", err, want)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Path.String() != "rules[0].when" || ce.Line != 3 {
		t.Fatalf("not a positioned ConfigError: %#v", ce)
	}

	// A directory, or an empty file (no rules).
	os.WriteFile(main, []byte("gateway_id: gw\nuplinks: [{name: cloud, http: {url: 'http://127.0.0.1:1/'}}]\nrules: {file: r}\n"), 0o644)
	if _, err := LoadFile(main); err == nil || !strings.Contains(err.Error(), ":3:15: rules.file: ") || !strings.Contains(err.Error(), "is not a regular file") {
		t.Fatalf("directory as rules file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "r", "rules.yaml"), []byte("# no rules yet\n"), 0o644)
	os.WriteFile(main, []byte("gateway_id: gw\nuplinks: [{name: cloud, http: {url: 'http://127.0.0.1:1/'}}]\nrules: {file: r/rules.yaml}\n"), 0o644)
	if c, err := LoadFile(main); err != nil || len(c.Config.Rules.Rules) != 0 {
		t.Fatalf("empty rules file: %v", err)
	}
}

// FuzzParse: arbitrary bytes as a config file give a config or errors,
// never a panic.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("../configs/*.yaml")
	for _, s := range append(seeds, more...) {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			if _, cerr := Compile(c.Config); cerr != nil {
				t.Fatalf("Parse accepted a config Compile rejects: %v", cerr)
			}
		}
		for _, p := range yamlconf.Problems(err) {
			if p.File == "" || p.Line < 1 || p.Column < 1 {
				t.Fatalf("a problem without its position: %#v", p)
			}
		}
	})
}

// An events.topics entry may leave source, type and subject out (the
// README's mapping table gives their defaults): the file loads, and events
// get a subject naming the device, so rule state is kept per device.
func TestTopicDefaultsFromFile(t *testing.T) {
	c, err := Parse("defaults.yaml", []byte(`
gateway_id: gw
events:
  topics:
    - match: sensors/{device}/{kind}
    - match: bridge/+/#
uplinks:
  - name: cloud
    http: { url: "http://127.0.0.1:1/" }
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ topic, source, typ, subject string }{
		{"sensors/th-1/temp", "/edgegate/gw/devices/th-1", "io.edgegate.device.temp", "th-1"},
		{"bridge/zb/x", "/edgegate/gw/clients/dev-9", "io.edgegate.mqtt.message", "dev-9"},
	} {
		e, err := c.mapper.Map(cloudevent.Message{Topic: tt.topic, ClientID: "dev-9", Payload: []byte(`1`)})
		if err != nil {
			t.Fatal(err)
		}
		if e.Source != tt.source || e.Type != tt.typ || e.Subject != tt.subject {
			t.Errorf("%s: source %q type %q subject %q, want %q %q %q", tt.topic, e.Source, e.Type, e.Subject, tt.source, tt.typ, tt.subject)
		}
	}
}
