package configschema

import (
	"fmt"
	"go/ast"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strings"
)

// comment is the doc comment of field name of struct type t (or of the
// type itself when name is ""), as plain text: paragraphs on one line
// each, code blocks indented by a tab.
func (g *generator) comment(t reflect.Type, name string) string {
	g.load(t.PkgPath())
	key := t.PkgPath() + "." + t.Name()
	if name != "" {
		key += "." + name
	}
	return g.comments[key]
}

// typeDoc is the doc comment of a named type (a list's element type), or "".
func (g *generator) typeDoc(t reflect.Type) string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Name() == "" || t.PkgPath() == "" {
		return ""
	}
	return g.comment(t, "")
}

// load reads the comments of the struct types of a package of the module.
func (g *generator) load(pkg string) {
	if g.read[pkg] {
		return
	}
	g.read[pkg] = true
	rel, ok := strings.CutPrefix(pkg, g.o.Module)
	if !ok || g.o.Module == "" {
		return // the standard library: time.Duration has no keys
	}
	dir := filepath.Join(g.o.Dir, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
	// Test files are read too, for types declared in a package's own
	// tests; an external test package (name_test) is another package.
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, nil, parser.ParseComments)
	if err != nil {
		g.errs = append(g.errs, fmt.Errorf("read the comments of %s: %w", pkg, err))
		return
	}
	for name, p := range pkgs {
		if strings.HasSuffix(name, "_test") {
			continue
		}
		for _, f := range p.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, spec := range gd.Specs {
					ts := spec.(*ast.TypeSpec)
					doc := ts.Doc
					if doc == nil && len(gd.Specs) == 1 {
						doc = gd.Doc
					}
					g.comments[pkg+"."+ts.Name.Name] = text(doc)
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, fl := range st.Fields.List {
						doc := fl.Doc
						if doc == nil {
							doc = fl.Comment
						}
						for _, n := range fl.Names {
							g.comments[pkg+"."+ts.Name.Name+"."+n.Name] = text(doc)
						}
						if len(fl.Names) == 0 { // embedded
							if id, ok := fl.Type.(*ast.Ident); ok {
								g.comments[pkg+"."+ts.Name.Name+"."+id.Name] = text(doc)
							}
						}
					}
				}
			}
		}
	}
}

// text formats a comment group: paragraphs on one line, code blocks
// indented by a tab, no trailing newline.
func text(cg *ast.CommentGroup) string {
	if cg == nil {
		return ""
	}
	var p comment.Parser
	pr := comment.Printer{TextWidth: -1}
	return strings.TrimSpace(string(pr.Text(p.Parse(cg.Text()))))
}
