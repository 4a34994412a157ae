package gateway

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/edgegate/edgegate/"

// The layering promised by each package's doc: gateway (and cmd) wire; the
// leaf packages import no other edgegate package but cloudevent, the event
// record every layer shares. Every package documents itself.
func TestPackageLayering(t *testing.T) {
	// allowed[pkg] lists the edgegate packages pkg may import.
	allowed := map[string][]string{
		"internal/yamlconf":  nil,
		"cloudevent":         {"internal/yamlconf"},
		"buffer":             {"internal/yamlconf", "internal/metricname"},
		"mqtt":               {"internal/yamlconf", "internal/metricname"},
		"rules":              {"cloudevent", "internal/yamlconf", "internal/metricname"},
		"uplink":             {"cloudevent", "internal/yamlconf", "internal/pahoclient", "internal/metricname"},
		"internal/ceconform": nil,
		"internal/receiver":  {"internal/ceconform"},
		"internal/cetest":    {"internal/ceconform", "internal/receiver"},
		"internal/mqtttest":  {"internal/pahoclient"},
		"internal/devices":   {"internal/pahoclient"},
		// pahoclient builds every paho client; anything may import it.
		"internal/pahoclient": nil,
		// metricname writes every metric name with labels; anything may
		// import it.
		"internal/metricname": nil,
	}
	// testOnly packages are test support: only _test.go files import them.
	testOnly := map[string]bool{"internal/cetest": true, "internal/mqtttest": true}
	seen := map[string]bool{}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, ".") && rel != "." || strings.Contains(rel, "testdata") || strings.HasPrefix(rel, "build") {
			if rel != "." {
				return filepath.SkipDir
			}
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.ImportsOnly)
		if err != nil || len(pkgs) == 0 {
			return err
		}
		for _, p := range pkgs {
			documented := false
			for name, f := range p.Files {
				if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+p.Name) || p.Name == "main" && f.Doc != nil {
					documented = true
				}
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
					ok := false
					for _, a := range allow {
						ok = ok || module+a == ip
					}
					if !ok {
						t.Errorf("%s imports %s: a leaf package imports only the packages its doc allows (cloudevent, internal/yamlconf)", name, ip)
					}
				}
			}
			if !documented {
				t.Errorf("package %s (%s) has no package doc comment", p.Name, rel)
			}
			seen[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range allowed {
		if _, err := os.Stat(filepath.Join(root, pkg)); err == nil && !seen[pkg] {
			t.Errorf("package %s was not checked", pkg)
		}
	}
}
