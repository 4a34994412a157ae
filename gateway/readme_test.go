package gateway

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/access"
	"github.com/edgegate/edgegate/internal/testpki"
	"github.com/edgegate/edgegate/rules"
)

// Every YAML example of the README is a valid configuration: a block is
// the sections it shows over a minimal configuration (one uplink "cloud"),
// with the files it names (tokens, certificates, keys) generated. The
// rules' own tests in a block must pass.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```").FindAllSubmatchIndex(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("no yaml blocks in README.md")
	}
	files := readmeFiles(t)
	schema := compileSchema(t, generated(t)[schemaFile])
	for _, b := range blocks {
		line := 1 + strings.Count(string(readme[:b[2]]), "\n")
		src := readme[b[2]:b[3]]
		t.Run("README.md:"+itoa(line), func(t *testing.T) {
			data := readmeConfig(t, src, files)
			c, err := Parse("README.md block", data)
			if err != nil {
				t.Fatalf("the example at README.md line %d:\n%s\n%v", line, src, err)
			}
			if err := validateYAML(schema, data); err != nil {
				t.Errorf("the example at README.md line %d loads but does not match configs/edgegate.schema.json:\n%v", line, err)
			}
			var names []string
			for _, u := range c.Config.Uplinks {
				names = append(names, u.Name)
			}
			results, err := rules.RunTests(c.Config.Rules, names, rules.WithGatewayID(c.Config.GatewayID))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if r.Failed() {
					t.Errorf("rules test %q of the example at line %d fails: %+v", r.Name, line, r)
				}
			}
		})
	}
}

// No configuration example escapes TestReadmeExamples under another fence:
// a fenced block that reads as a mapping with a configuration section is a
// yaml block.
func TestReadmeConfigBlocksAreYAML(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, p := range schemaSections(t) {
		sections[p] = true
	}
	fences := regexp.MustCompile("(?ms)^```([^\n]*)\n(.*?)^```").FindAllSubmatchIndex(readme, -1)
	for _, f := range fences {
		lang := strings.TrimSpace(string(readme[f[2]:f[3]]))
		if lang == "yaml" {
			continue
		}
		var m map[string]any
		if yaml.Unmarshal(readme[f[4]:f[5]], &m) != nil {
			continue
		}
		for k := range m {
			if sections[k] {
				line := 1 + strings.Count(string(readme[:f[0]]), "\n")
				t.Errorf("README.md line %d: a block with the configuration section %q is fenced %q: fence it ```yaml so that it is tested", line, k, "```"+lang)
				break
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// readmeConfig puts the sections of an example over a minimal
// configuration and points every *_file setting at a generated file.
func readmeConfig(t *testing.T, example []byte, files map[string]string) []byte {
	t.Helper()
	var sections yaml.Node
	if err := yaml.Unmarshal(example, &sections); err != nil {
		t.Fatalf("example is not YAML: %v\n%s", err, example)
	}
	pointFiles(sections.Content[0], files)
	base := map[string]any{
		"gateway_id": "readme",
		"buffer":     map[string]any{"dir": t.TempDir()},
		"uplinks":    []any{map[string]any{"name": "cloud", "http": map[string]any{"url": "http://127.0.0.1:8081/"}}},
	}
	top := sections.Content[0]
	if top.Kind != yaml.MappingNode {
		t.Fatalf("example is not a mapping of sections:\n%s", example)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		base[top.Content[i].Value] = top.Content[i+1]
	}
	out, err := yaml.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pointFiles replaces the value of every key ending in _file with a
// generated file of its kind (key_file: a private key; ca_file,
// client_ca_file and cert_file: a certificate; users_file: a users file;
// others: a secret).
func pointFiles(n *yaml.Node, files map[string]string) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := n.Content[i], n.Content[i+1]; strings.HasSuffix(k.Value, "_file") && v.Kind == yaml.ScalarNode {
				kind := k.Value
				if _, ok := files[kind]; !ok {
					kind = "secret"
				}
				v.Value, v.Style = files[kind], 0
			}
		}
	}
	for _, c := range n.Content {
		pointFiles(c, files)
	}
}

// readmeFiles writes a CA, a certificate it signed with its key, a secret
// and a users file.
func readmeFiles(t *testing.T) map[string]string {
	t.Helper()
	ca := testpki.NewCA(t, "readme CA")
	leaf := ca.Server(t, "readme")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash, err := access.HashSecret([]byte("readme-secret"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"users_file":     write("users.yaml", []byte("users:\n  - username: readme-device\n    password_hash: \""+hash+"\"\n")),
		"ca_file":        ca.File,
		"client_ca_file": ca.File,
		"cert_file":      leaf.CertFile,
		"key_file":       leaf.KeyFile,
		"secret":         write("secret", []byte("s3cret\n")),
	}
}

// README.md's table of what changes live on a reload says what
// restartOnlyFields says, and covers every key of the configuration.
func TestReadmeReloadTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := regexp.MustCompile("(?m)^\\| Key \\| On reload \\|\n\\|---\\|---\\|\n((?:\\|.*\n)+)").FindSubmatch(readme)
	if table == nil {
		t.Fatal("README.md has no table | Key | On reload |")
	}
	live, restart := map[string]bool{}, map[string]bool{}
	for _, row := range strings.Split(strings.TrimSpace(string(table[1])), "\n") {
		cells := strings.Split(strings.Trim(row, "|"), "|")
		if len(cells) != 2 {
			t.Fatalf("table row %q: want two cells", row)
		}
		into := live
		switch how := strings.TrimSpace(cells[1]); {
		case strings.HasPrefix(how, "restart"):
			into = restart
		case !strings.HasPrefix(how, "live"):
			t.Fatalf("table row %q: say live or restart", row)
		}
		for _, k := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[0], -1) {
			into[k[1]] = true
		}
	}
	var want []string
	for _, f := range restartOnlyFields {
		want = append(want, f.path)
		if !restart[f.path] {
			t.Errorf("README.md's reload table does not say %s needs a restart", f.path)
		}
	}
	for k := range restart {
		if !slices.Contains(want, k) {
			t.Errorf("README.md's reload table says %s needs a restart; restartOnly lets it change live", k)
		}
	}
	// Every key is in the table, or each of its section's keys is.
	rt := reflect.TypeFor[Config]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if live[key] || restart[key] {
			continue
		}
		if f.Type.Kind() != reflect.Struct {
			t.Errorf("README.md's reload table does not say whether %s changes live", key)
			continue
		}
		for j := range f.Type.NumField() {
			sub, _, _ := strings.Cut(f.Type.Field(j).Tag.Get("yaml"), ",")
			if k := key + "." + sub; !live[k] && !restart[k] {
				t.Errorf("README.md's reload table does not say whether %s changes live", k)
			}
		}
	}
}
