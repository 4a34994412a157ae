package pahoclient

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every paho client of the module, tests included, is built with New: a
// client from paho.NewClient can race in resume (see the package doc).
func TestEveryClientIsBuiltHere(t *testing.T) {
	const pahoPath = "github.com/eclipse/paho.mqtt.golang"
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "build") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.ToSlash(filepath.Dir(rel)) == "internal/pahoclient" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p != pahoPath {
				continue
			}
			name := "mqtt" // paho's package name
			if imp.Name != nil {
				name = imp.Name.Name
			}
			checked++
			if f, err = parser.ParseFile(fset, path, nil, 0); err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewClient" {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == name {
						t.Errorf("%s: %s.NewClient: build paho clients with pahoclient.New", fset.Position(sel.Pos()), name)
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no file imports paho: is the walk rooted at the module?")
	}
}
