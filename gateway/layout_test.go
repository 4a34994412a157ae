package gateway

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/edgegate/edgegate/"

// The layering promised by each package's doc: gateway (and cmd) wire; the
// leaf packages import no other edgegate package but cloudevent, the event
// record every layer shares, and the small internal packages their docs
// allow.
func TestPackageLayering(t *testing.T) {
	// allowed[pkg] lists the edgegate packages pkg may import.
	allowed := map[string][]string{
		"internal/yamlconf":  nil,
		"cloudevent":         {"internal/yamlconf"},
		"buffer":             {"internal/yamlconf", "internal/metricname"},
		"mqtt":               {"internal/yamlconf", "internal/metricname", "internal/ratelog", "internal/certfile"},
		"access":             {"internal/yamlconf"},
		"rules":              {"cloudevent", "internal/yamlconf", "internal/metricname"},
		"uplink":             {"cloudevent", "internal/yamlconf", "internal/pahoclient", "internal/metricname", "internal/certfile"},
		"internal/ceconform": nil,
		"internal/receiver":  {"internal/ceconform"},
		"internal/cetest":    {"internal/ceconform", "internal/receiver"},
		"internal/mqtttest":  {"internal/pahoclient"},
		"internal/devices":   {"internal/pahoclient"},
		// bench measures the binary from outside; the ceiling is the broker
		// alone, in-process, and in mqtt mode the broker is the cloud. Its
		// startup runs write the backlog as the gateway would have
		// (buffer, cloudevent) before starting the binary on it.
		"internal/bench": {"internal/devices", "internal/receiver", "internal/ceconform", "internal/freeport", "mqtt", "buffer", "cloudevent"},
		// pahoclient builds every paho client; anything may import it.
		"internal/pahoclient": nil,
		// metricname writes every metric name with labels; anything may
		// import it.
		"internal/metricname": nil,
		// certfile keeps a TLS certificate current with its files; anything
		// that serves or presents one may import it.
		"internal/certfile": {"internal/yamlconf"},
		// ratelog aggregates repeated log lines; anything may import it.
		"internal/ratelog":  nil,
		"internal/testpki":  nil,
		"internal/sdnotify": nil,
		"internal/exetrim":  nil,
		// tail keeps the recent buffer appends and streams them.
		"internal/tail":       {"cloudevent", "buffer"},
		"internal/statuspage": nil,
		// configstore keeps applied configurations on disk for gateway.
		"internal/configstore": nil,
		"internal/browsertest": nil,
		"internal/faults":      nil,
		// configsign owns keys and signature lines: standard library only.
		"configsign": nil,
		// overload turns samples of intake, backlog and deliveries into an
		// intake limit; gateway samples and applies it.
		"overload": {"internal/yamlconf"},
		// configchannel pulls and receives configs for the apply path.
		"configchannel": {"configsign", "internal/yamlconf", "internal/metricname", "internal/ratelog", "internal/certfile"},
		// configschema generates the configuration's JSON Schema and
		// reference from its Go types (make schema), in gateway's tests.
		"internal/configschema": {"internal/yamlconf"},
		// docs holds the generated configuration reference for the binary.
		"docs": nil,
	}
	// testOnly packages are test support: only _test.go files import them.
	testOnly := map[string]bool{"internal/cetest": true, "internal/mqtttest": true, "internal/testpki": true, "internal/browsertest": true, "internal/configschema": true, "internal/faults": true}
	pkgs := sourcePackages(t)
	for rel, p := range pkgs {
		for name, f := range p.Files {
			for _, imp := range f.Imports {
				ip, _ := strconv.Unquote(imp.Path.Value)
				if !strings.HasPrefix(ip, module) {
					continue
				}
				if testOnly[strings.TrimPrefix(ip, module)] {
					t.Errorf("%s imports %s: test support is for _test.go files only", name, ip)
				}
				allow, leaf := allowed[rel]
				if !leaf {
					continue // gateway and cmd wire the others
				}
				if !slices.Contains(allow, strings.TrimPrefix(ip, module)) {
					t.Errorf("%s imports %s: package %s imports only the edgegate packages its doc allows %v", name, ip, rel, allow)
				}
			}
		}
	}
	for pkg := range allowed {
		if _, err := os.Stat(filepath.Join("..", pkg)); err == nil && pkgs[pkg] == nil {
			t.Errorf("package %s was not checked", pkg)
		}
	}
	// A leaf's tests may also use the package itself (external tests) and
	// the shared test support.
	support := []string{"internal/cetest", "internal/mqtttest", "internal/pahoclient", "internal/ceconform", "internal/testpki", "internal/freeport", "internal/faults"}
	for rel, allow := range allowed {
		for _, imp := range testImports(t, rel) {
			name, path := imp[0], imp[1]
			if path != rel && !slices.Contains(allow, path) && !slices.Contains(support, path) {
				t.Errorf("%s imports %s: tests of %s use only what the package may import, itself and %v", name, module+path, rel, support)
			}
		}
	}
}

// testImports returns the edgegate packages (module path trimmed) that the
// _test.go files of the package in rel import, as {file, path} pairs.
func testImports(t *testing.T, rel string) [][2]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", rel, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if path, ok := strings.CutPrefix(ip, module); ok {
				out = append(out, [2]string{name, path})
			}
		}
	}
	return out
}

// Every package documents itself in doc.go: what it owns, what it must not
// import, and its concurrency rules (checkPackageDoc).
func TestPackageDoc(t *testing.T) {
	pkgs := sourcePackages(t)
	for rel, p := range pkgs {
		checkPackageDoc(t, rel, p)
	}
	for _, pkg := range []string{"gateway", "cloudevent", "cmd/edgegate", "internal/bench", "internal/yamlconf"} {
		if pkgs[pkg] == nil {
			t.Errorf("package %s was not checked", pkg)
		}
	}
}

// sourcePackages parses the non-test files (imports and comments only) of
// every package in the module, keyed by directory relative to the module
// root; build/, testdata and hidden directories are skipped.
func sourcePackages(t *testing.T) map[string]*ast.Package {
	t.Helper()
	out := map[string]*ast.Package{}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel != "." && (strings.HasPrefix(rel, ".") || strings.Contains(rel, "testdata") || strings.HasPrefix(rel, "build")) {
			return filepath.SkipDir
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, p := range pkgs {
			if out[rel] != nil {
				t.Errorf("%s holds two packages, %s and %s", rel, out[rel].Name, p.Name)
			}
			out[rel] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkPackageDoc checks that the package in dir has its doc comment in
// doc.go, and only there, and that the comment says what the package must
// not import and what its concurrency rules are. A command's comment starts
// "Command"; a library's "Package <name>".
func checkPackageDoc(t *testing.T, dir string, p *ast.Package) {
	t.Helper()
	var doc string
	for name, f := range p.Files {
		if f.Doc == nil {
			continue
		}
		if filepath.Base(name) != "doc.go" {
			t.Errorf("package %s (%s): %s has a package comment: it belongs in doc.go only", p.Name, dir, filepath.Base(name))
			continue
		}
		doc = strings.Join(strings.Fields(f.Doc.Text()), " ")
	}
	want := "Package " + p.Name + " "
	if p.Name == "main" {
		want = "Command "
	}
	switch {
	case doc == "":
		t.Errorf("package %s (%s) has no doc.go with a package comment", p.Name, dir)
	case !strings.HasPrefix(doc, want):
		t.Errorf("package %s (%s): doc.go's comment does not start %q", p.Name, dir, want)
	case !strings.Contains(doc, "must not import") && !strings.Contains(doc, "imports no"):
		t.Errorf("package %s (%s): doc.go does not say what the package must not import", p.Name, dir)
	case !strings.Contains(doc, "oncurren"):
		t.Errorf("package %s (%s): doc.go does not state its concurrency rules", p.Name, dir)
	}
}
