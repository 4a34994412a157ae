package mqtt

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// doc.go says mqtt must not import the gateway's other packages (the
// config decoder, internal/yamlconf, is shared by every section, and
// internal/metricname by every package with metrics); its tests
// may use the shared paho test clients, and its examples build their paho
// client with internal/pahoclient.
func TestImportsStayLeaf(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			testSupport := strings.HasSuffix(name, "_test.go") &&
				(path == "github.com/edgegate/edgegate/internal/mqtttest" || path == "github.com/edgegate/edgegate/internal/pahoclient")
			if strings.HasPrefix(path, "github.com/edgegate/edgegate/") && path != "github.com/edgegate/edgegate/mqtt" &&
				path != "github.com/edgegate/edgegate/internal/yamlconf" &&
				path != "github.com/edgegate/edgegate/internal/metricname" && !testSupport {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
