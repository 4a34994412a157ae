package gateway

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/access"
	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/configschema"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/rules"
	"github.com/edgegate/edgegate/uplink"
)

var update = flag.Bool("update", false, "rewrite the generated configuration schema and reference (make schema)")

// The generated files: the JSON Schema of the configuration file, that of
// an included rules file, and the configuration reference, all from the
// Go types (configschema). make schema writes them.
const (
	schemaFile      = "../configs/edgegate.schema.json"
	rulesSchemaFile = "../configs/rules.schema.json"
	referenceFile   = "../docs/config.md"
)

// schemaOptions says what the Go types cannot: the values a string field
// accepts (from the owning packages' constants) and the keys a mapping
// must have (as Compile refuses it without them).
func schemaOptions() configschema.Options {
	type f = configschema.Field
	return configschema.Options{
		Module: "github.com/edgegate/edgegate",
		Dir:    "..",
		Enums: map[f][]any{
			configschema.FieldOf[LogConfig]("Level"):                {"debug", "info", "warn", "error"},
			configschema.FieldOf[LogConfig]("Format"):               {"text", "json"},
			configschema.FieldOf[mqtt.ListenerConfig]("Type"):       {mqtt.TypeTCP, mqtt.TypeTLS, mqtt.TypeWebsocket, mqtt.TypeWSS},
			configschema.FieldOf[mqtt.TLSConfig]("ClientCerts"):     {mqtt.ClientCertsRequire, mqtt.ClientCertsOptional},
			configschema.FieldOf[mqtt.TLSConfig]("Identity"):        {mqtt.IdentityCN, mqtt.IdentitySANDNS, mqtt.IdentitySANEmail, mqtt.IdentitySANURI},
			configschema.FieldOf[access.Config]("ClientID"):         {access.ClientIDUsername, access.ClientIDAny},
			configschema.FieldOf[buffer.Config]("Overflow"):         {string(buffer.DropOldest), string(buffer.Reject)},
			configschema.FieldOf[cloudevent.Config]("Unmatched"):    {cloudevent.UnmatchedGeneric, cloudevent.UnmatchedDrop},
			configschema.FieldOf[uplink.HTTPConfig]("Mode"):         {uplink.ModeBatch, uplink.ModeBinary, uplink.ModeStructured},
			configschema.FieldOf[uplink.HTTPConfig]("Compression"):  {uplink.CompressionNone, uplink.CompressionGzip},
			configschema.FieldOf[uplink.MQTTConfig]("SessionStore"): {uplink.SessionStoreMemory, uplink.SessionStoreFile},
			configschema.FieldOf[rules.Rule]("OnError"):             {rules.OnErrorSkip, rules.OnErrorDrop, rules.OnErrorDeadLetter},
			configschema.FieldOf[rules.Schema]("OnInvalid"):         {rules.OnErrorDeadLetter, rules.OnErrorDrop, rules.OnInvalidTag},
			configschema.FieldOf[rules.PublishSpec]("QoS"):          {0, 1, 2},
		},
		Required: map[reflect.Type][]string{
			reflect.TypeFor[mqtt.ListenerConfig](): {"id", "type", "address"},
			reflect.TypeFor[access.User]():         {"username", "password_hash"},
			reflect.TypeFor[AdminToken]():          {"name", "hash"},
			reflect.TypeFor[cloudevent.Topic]():    {"match"},
			reflect.TypeFor[uplink.Config]():       {"name"},
			reflect.TypeFor[uplink.HTTPConfig]():   {"url"},
			reflect.TypeFor[uplink.MQTTConfig]():   {"url"},
			reflect.TypeFor[rules.Rule]():          {"name", "actions"},
			reflect.TypeFor[rules.Schema]():        {"type", "schema"},
			reflect.TypeFor[rules.EmitSpec]():      {"type"},
			reflect.TypeFor[rules.PublishSpec]():   {"topic"},
			reflect.TypeFor[rules.AggregateSpec](): {"value", "every", "emit"},
			reflect.TypeFor[rules.StaleSpec]():     {"after", "emit"},
			reflect.TypeFor[rules.Test]():          {"name"},
		},
		OneOf:  map[reflect.Type][]string{reflect.TypeFor[uplink.Config](): {"http", "mqtt"}},
		OneKey: []reflect.Type{reflect.TypeFor[rules.Action]()},
		RequiredWhen: map[reflect.Type][]configschema.When{
			reflect.TypeFor[mqtt.ListenerConfig](): {{Key: "type", Values: []any{mqtt.TypeTLS, mqtt.TypeWSS}, Require: "tls"}},
		},
	}
}

// generated returns the three generated files from the Go types.
func generated(t *testing.T) map[string][]byte {
	t.Helper()
	o := schemaOptions()
	o.Title = "edgegate configuration"
	o.Description = "The configuration file of edgegate (edgegate run --config FILE). Every key is optional unless marked required; a key the file leaves out takes its default. Unknown keys are refused."
	o.Default = DefaultConfig()
	o.HideDefault = []string{"gateway_id"}
	cfg, err := configschema.Generate(reflect.TypeFor[Config](), o)
	if err != nil {
		t.Fatalf("generate the configuration schema:\n%v", err)
	}
	rs := cfg.Section("rules", "file")
	rs.Description = "A rules file, included by the configuration's rules: {file: FILE}: the rules section in its own file."
	out := map[string][]byte{}
	if out[schemaFile], err = cfg.JSON("edgegate configuration"); err != nil {
		t.Fatal(err)
	}
	if out[rulesSchemaFile], err = rs.JSON("edgegate rules file"); err != nil {
		t.Fatal(err)
	}
	ref := cfg.Markdown("Configuration reference")
	out[referenceFile] = append([]byte("<!-- Generated from the Go types by make schema (gateway/schema_test.go): edit the doc comments of the configuration's fields, not this file. -->\n\n"), append(ref, '\n')...)
	return out
}

// The shipped schema and reference are those the Go types give: a field
// added, renamed or documented anew changes them, and this test says so
// until make schema (go test ./gateway -run TestConfigSchemaInSync
// -update) writes them again.
func TestConfigSchemaInSync(t *testing.T) {
	for name, want := range generated(t) {
		if *update {
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v: run make schema", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with the configuration's Go types: run make schema and commit it", strings.TrimPrefix(name, "../"))
		}
	}
}

// schemaSections lists the top-level keys of the configuration schema.
func schemaSections(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(generated(t)[schemaFile], &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range doc.Properties {
		out = append(out, k)
	}
	return out
}

// compileSchema compiles a generated JSON Schema.
func compileSchema(t *testing.T, data []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validateYAML checks a YAML document against s as an editor does: the
// document as JSON.
func validateYAML(s *jsonschema.Schema, data []byte) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

var modeline = regexp.MustCompile(`(?m)\A# yaml-language-server: \$schema=(\S+)\n`)

// Every shipped configuration names its schema on its first line (so
// editors find it) and that schema accepts it.
func TestShippedConfigsMatchSchema(t *testing.T) {
	gen := generated(t)
	files, _ := filepath.Glob("../configs/*.yaml")
	more, _ := filepath.Glob("../configs/*/*.yaml")
	files = append(files, more...)
	if len(files) < 5 {
		t.Fatalf("only %d configuration files in configs/", len(files))
	}
	for _, name := range files {
		t.Run(strings.TrimPrefix(name, "../"), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			m := modeline.FindSubmatch(data)
			if m == nil {
				t.Fatalf("the first line is not # yaml-language-server: $schema=<relative path of edgegate.schema.json or rules.schema.json>")
			}
			path := filepath.Join(filepath.Dir(name), string(m[1]))
			schema, ok := gen[path]
			if !ok {
				t.Fatalf("$schema=%s is %s, not a generated schema", m[1], path)
			}
			if err := validateYAML(compileSchema(t, schema), data); err != nil {
				t.Errorf("%s does not match %s:\n%v", name, path, err)
			}
		})
	}
}

// The schema refuses what the loader refuses: a wrong type, an unknown
// key, a value outside an enum, a missing required key, two senders.
func TestSchemaRejectsBrokenConfig(t *testing.T) {
	schema := compileSchema(t, generated(t)[schemaFile])
	const uplinks = "uplinks: [{name: cloud, http: {url: 'http://127.0.0.1:9/'}}]\n"
	good := "buffer: {dir: /tmp/eg}\n" + uplinks
	if err := validateYAML(schema, []byte(good)); err != nil {
		t.Fatalf("a minimal configuration does not match: %v", err)
	}
	if _, err := Parse("good.yaml", []byte(good)); err != nil {
		t.Fatalf("a minimal configuration does not load: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"wrong type", "buffer: {dir: /tmp/eg, max_bytes: [1]}\n" + uplinks, "/buffer/max_bytes"},
		{"wrong scalar type", good + "mqtt: {max_inflight: many}\n", "/mqtt/max_inflight"},
		{"bad byte size", good + "memory_limit: 12XB\n", "/memory_limit"},
		{"bad duration", good + "shutdown_timeout: 10\n", "/shutdown_timeout"},
		{"unknown key", "buffer: {dir: /tmp/eg}\nuplinks: [{name: cloud, http: {url: 'http://127.0.0.1:9/', urll: x}}]\n", "urll"},
		{"unknown top-level key", good + "bufer: {}\n", "bufer"},
		{"bad enum", good + "log: {level: loud}\n", "/log/level"},
		{"bad uplink mode", "buffer: {dir: /tmp/eg}\nuplinks: [{name: cloud, http: {url: 'http://127.0.0.1:9/', mode: fast}}]\n", "/uplinks/0/http/mode"},
		{"missing required", "buffer: {dir: /tmp/eg}\nuplinks: [{http: {url: 'http://127.0.0.1:9/'}}]\n", "name"},
		{"two senders", "buffer: {dir: /tmp/eg}\nuplinks: [{name: cloud, http: {url: 'http://127.0.0.1:9/'}, mqtt: {url: 'tcp://127.0.0.1:9'}}]\n", "oneOf"},
		{"tls listener without tls", good + "mqtt: {listeners: [{id: a, type: wss, address: '127.0.0.1:0'}]}\n", "/mqtt/listeners/0"},
		{"two kinds in one action", good + "rules: {rules: [{name: r, actions: [{drop: true, route: [cloud]}]}]}\n", "/rules/rules/0/actions/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateYAML(schema, []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("schema: error %v, want one naming %s", err, tc.want)
			}
			if _, err := Parse("broken.yaml", []byte(tc.yaml)); err == nil {
				t.Errorf("the loader accepts what the schema refuses")
			}
		})
	}
}

// Every value an enum of the schema offers loads, and a value outside it
// is refused by both: the editor never flags what the gateway takes, nor
// offers what it refuses. Each enum of schemaOptions has a configuration
// here that sets it.
func TestSchemaEnumsLoad(t *testing.T) {
	schema := compileSchema(t, generated(t)[schemaFile])
	files := readmeFiles(t)
	tls := fmt.Sprintf("{cert_file: %q, key_file: %q}", files["cert_file"], files["key_file"])
	listener := func(typ, tls string) string {
		return fmt.Sprintf("mqtt: {listeners: [{id: a, type: %s, address: '127.0.0.1:0'%s}]}\n", typ, tls)
	}
	clientCA := func(key string) func(v any) string {
		return func(v any) string {
			return listener("tls", fmt.Sprintf(", tls: {cert_file: %q, key_file: %q, client_ca_file: %q, %s: %v}", files["cert_file"], files["key_file"], files["ca_file"], key, v))
		}
	}
	format := func(f string) func(v any) string { return func(v any) string { return fmt.Sprintf(f, v) } }
	sets := map[configschema.Field]func(v any) string{
		configschema.FieldOf[LogConfig]("Level"):  format("log: {level: %v}\n"),
		configschema.FieldOf[LogConfig]("Format"): format("log: {format: %v}\n"),
		configschema.FieldOf[mqtt.ListenerConfig]("Type"): func(v any) string {
			if v == mqtt.TypeTLS || v == mqtt.TypeWSS {
				return listener(fmt.Sprint(v), ", tls: "+tls)
			}
			return listener(fmt.Sprint(v), "")
		},
		configschema.FieldOf[mqtt.TLSConfig]("ClientCerts"):     clientCA("client_certs"),
		configschema.FieldOf[mqtt.TLSConfig]("Identity"):        clientCA("identity"),
		configschema.FieldOf[access.Config]("ClientID"):         format("auth: {client_id: %v}\n"),
		configschema.FieldOf[buffer.Config]("Overflow"):         format("buffer: {dir: /tmp/eg, overflow: %v}\n"),
		configschema.FieldOf[cloudevent.Config]("Unmatched"):    format("events: {unmatched: %v}\n"),
		configschema.FieldOf[uplink.HTTPConfig]("Mode"):         format("uplinks: [{name: cloud, http: {url: 'http://127.0.0.1:9/', mode: %v}}]\n"),
		configschema.FieldOf[uplink.HTTPConfig]("Compression"):  format("uplinks: [{name: cloud, http: {url: 'http://127.0.0.1:9/', compression: %v}}]\n"),
		configschema.FieldOf[uplink.MQTTConfig]("SessionStore"): format("uplinks: [{name: cloud, mqtt: {url: 'tcp://127.0.0.1:9', session_store: %v}}]\n"),
		configschema.FieldOf[rules.Rule]("OnError"):             format("rules: {rules: [{name: r, on_error: %v, actions: [{drop: true}]}]}\n"),
		configschema.FieldOf[rules.Schema]("OnInvalid"):         format("rules: {schemas: [{type: t, schema: {type: object}, on_invalid: %v}]}\n"),
		configschema.FieldOf[rules.PublishSpec]("QoS"):          format("rules: {rules: [{name: r, actions: [{publish: {topic: \"'a'\", payload: \"'x'\", qos: %v}}]}]}\n"),
	}
	// base completes a configuration with what set does not name.
	base := func(set string) string {
		out := set
		if !strings.HasPrefix(set, "buffer:") {
			out += "buffer: {dir: /tmp/eg}\n"
		}
		if !strings.HasPrefix(set, "uplinks:") {
			out += "uplinks: [{name: cloud, http: {url: 'http://127.0.0.1:9/'}}]\n"
		}
		return out
	}
	for field, values := range schemaOptions().Enums {
		set, ok := sets[field]
		if !ok {
			t.Errorf("no configuration sets %s: add one to TestSchemaEnumsLoad", field)
			continue
		}
		outside := any("bogus")
		if _, isInt := values[0].(int); isInt {
			outside = 7
		}
		for _, v := range append(values, outside) {
			data := []byte(base(set(v)))
			_, loadErr := Parse("enum.yaml", data)
			schemaErr := validateYAML(schema, data)
			switch {
			case v == outside && (loadErr == nil || schemaErr == nil):
				t.Errorf("%s = %v: loader error %v, schema error %v; want both to refuse it", field, v, loadErr, schemaErr)
			case v != outside && (loadErr != nil || schemaErr != nil):
				t.Errorf("%s = %v:\n%s\nloader error %v, schema error %v; want both to accept it", field, v, data, loadErr, schemaErr)
			}
		}
	}
}

// The README's VS Code settings map the shipped configurations to schemas
// that exist: every schema path is a generated schema, and every relative
// pattern matches a shipped file that names that schema on its first line.
func TestReadmeEditorSettings(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(\\{ \"yaml.schemas\".*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no json block with the yaml.schemas setting")
	}
	var settings struct {
		Schemas map[string][]string `json:"yaml.schemas"`
	}
	if err := json.Unmarshal(m[1], &settings); err != nil {
		t.Fatalf("the yaml.schemas block is not JSON: %v", err)
	}
	gen := generated(t)
	for schema, patterns := range settings.Schemas {
		path := filepath.Join("..", schema)
		if _, ok := gen[path]; !ok {
			t.Errorf("yaml.schemas names %s, not a generated schema", schema)
		}
		for _, p := range patterns {
			if filepath.IsAbs(p) {
				continue // where install.sh puts it
			}
			files, _ := filepath.Glob(filepath.Join("..", p))
			if len(files) == 0 {
				t.Errorf("yaml.schemas: %s matches no file", p)
			}
			for _, f := range files {
				data, _ := os.ReadFile(f)
				if ml := modeline.FindSubmatch(data); ml == nil || filepath.Join(filepath.Dir(f), string(ml[1])) != path {
					t.Errorf("yaml.schemas maps %s to %s, but its first line names another schema", f, schema)
				}
			}
		}
	}
}
