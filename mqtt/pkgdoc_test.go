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

// doc.go says mqtt must not import the gateway's other packages. Its tests
// may build paho clients with internal/pahoclient, which every package may
// import.
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
			testClient := strings.HasSuffix(name, "_test.go") && path == "github.com/edgegate/edgegate/internal/pahoclient"
			if strings.HasPrefix(path, "github.com/edgegate/edgegate/") && path != "github.com/edgegate/edgegate/mqtt" && !testClient {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
