package yamlconf

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Document is a parsed configuration file: the YAML tree that problems are
// located against. It is read-only.
type Document struct {
	file string
	data []byte
	root *yaml.Node // the top value; nil for an empty file
}

// File is the name the document was parsed under.
func (d *Document) File() string { return d.file }

// Empty reports whether the file holds no document (only comments, or
// nothing).
func (d *Document) Empty() bool { return d.root == nil }

// Node returns the node at p, or nil when the file does not have it.
func (d *Document) Node(p Path) *yaml.Node {
	n, rest := d.deepest(p)
	if rest > 0 {
		return nil
	}
	return n
}

// Locate returns err with each problem positioned in this document: at
// the node of its path or, when the file does not have that key, at the
// deepest part of the path it has (a missing key is reported at its
// mapping). Problems already located are kept as they are. The result is
// an errors.Join of *Error, or nil.
func (d *Document) Locate(err error) error {
	var out List
	for _, e := range Problems(err) {
		if e.File != "" {
			out = append(out, e)
			continue
		}
		out = append(out, d.locate(*e))
	}
	return out.Err()
}

func (d *Document) locate(e Error) *Error {
	e.File = d.file
	n, rest := d.deepest(e.Path)
	if n == nil {
		e.Line, e.Column = 1, 1
		return &e
	}
	e.Line, e.Column = n.Line, n.Column
	if rest == 0 && e.ExprColumn > 0 && e.ExprLine <= 1 {
		if col, ok := d.exprColumn(n, e.ExprColumn); ok {
			e.Column, e.ExprLine, e.ExprColumn = col, 0, 0
		}
	}
	return &e
}

// deepest follows p from the root and returns the last node found and how
// many steps of p were not found.
func (d *Document) deepest(p Path) (*yaml.Node, int) {
	n := d.root
	if n == nil {
		return nil, len(p.steps)
	}
	for i, s := range p.steps {
		next := child(n, s)
		if next == nil {
			return n, len(p.steps) - i
		}
		n = next
	}
	return n, 0
}

// child is the value at one step below n: a key of a mapping (merge keys
// included) or an index of a list.
func child(n *yaml.Node, s step) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if s.isIdx {
		if n.Kind != yaml.SequenceNode || s.index < 0 || s.index >= len(n.Content) {
			return nil
		}
		return n.Content[s.index]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value == s.key && k.ShortTag() != "!!merge" {
			return n.Content[i+1]
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].ShortTag() == "!!merge" {
			if c := child(n.Content[i+1], s); c != nil {
				return c
			}
		}
	}
	return nil
}

// exprColumn is the file column of column col of an expression written as
// the scalar n, when the file holds it as written on one line: plain, or
// quoted without escapes.
func (d *Document) exprColumn(n *yaml.Node, col int) (int, bool) {
	if n.Kind != yaml.ScalarNode || strings.Contains(n.Value, "\n") {
		return 0, false
	}
	var raw string
	switch n.Style {
	case 0:
		raw = n.Value
	case yaml.SingleQuotedStyle:
		raw = "'" + n.Value + "'"
	case yaml.DoubleQuotedStyle:
		raw = `"` + n.Value + `"`
	default:
		return 0, false
	}
	if !strings.HasPrefix(d.source(n.Line, n.Column), raw) {
		return 0, false // escapes shift columns
	}
	if n.Style != 0 {
		col++
	}
	return n.Column + col - 1, true
}

// source is the text of the file from line and column (1-based, counted in
// characters as yaml.v3 counts them) to the end of that line.
func (d *Document) source(line, col int) string {
	data := d.data
	for ; line > 1; line-- {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return ""
		}
		data = data[i+1:]
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	s := string(data)
	for ; col > 1 && s != ""; col-- {
		_, size := utf8.DecodeRuneInString(s)
		s = s[size:]
	}
	return s
}

// Sort orders problems for reading: those of the file named first, then
// by file, line and column. It sorts in place and returns errs.
func Sort(first string, errs []*Error) []*Error {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if a.File != b.File {
			if a.File == first {
				return -1
			}
			if b.File == first {
				return 1
			}
			return strings.Compare(a.File, b.File)
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return errs
}
