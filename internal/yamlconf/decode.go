package yamlconf

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaulter is implemented, with a pointer receiver, by types whose zero
// value is not their default. The decoder calls SetDefaults on every value
// it allocates (a list element, a map value, the target of a nil pointer)
// before decoding into it, so keys the file leaves out keep their default
// and an explicit 0 stays 0.
type Defaulter interface {
	SetDefaults()
}

// KeyMover is implemented by struct types some of whose keys have moved.
// For a key the type does not have, MovedKey returns where it went, as a
// message ("moved to uplinks[0].http.url"), or "" for a key that is simply
// unknown. at is the path of the struct; sibling returns the value of
// another key of the same mapping as written (ok false when absent; "" for
// a mapping or list), for a sibling that decides the new place.
type KeyMover interface {
	MovedKey(at Path, key string, sibling func(key string) (value string, ok bool)) string
}

// Decode parses data, the YAML document of file, and decodes it strictly
// into v, a non-nil pointer to a value that holds the defaults: keys the
// file leaves out keep them. It returns the Document, to locate the
// problems that validation finds later (nil when data is not valid YAML),
// and every problem found, located, joined with errors.Join. A problem in
// one value does not stop the others from being decoded.
func Decode(file string, data []byte, v any) (*Document, error) {
	doc, err := Parse(file, data)
	if doc == nil {
		return nil, err
	}
	var errs List
	errs.Nest(Path{}, err)
	errs.Nest(Path{}, doc.Decode(v))
	return doc, errs.Err()
}

// Parse parses data, the YAML document of file, without decoding it. A
// file with no document (empty, or only comments) gives an empty Document.
// A syntax error gives a nil Document and an *Error located at the problem;
// more than one document is an error with the Document of the first.
func Parse(file string, data []byte) (*Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &Document{file: file, data: data}, nil
		}
		return nil, syntaxError(file, data, err)
	}
	doc := &Document{file: file, data: data, root: &root}
	if len(root.Content) > 0 {
		doc.root = root.Content[0]
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
		return doc, nil
	case err != nil:
		return nil, syntaxError(file, data, err)
	default:
		return doc, &Error{File: file, Line: next.Line, Column: next.Column,
			Msg: "a second YAML document: a configuration file holds one"}
	}
}

// Decode decodes the document strictly into v (see the package Decode).
// An empty document leaves v as it is.
func (d *Document) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("yamlconf: Decode needs a non-nil pointer, got %T", v)
	}
	if d.root == nil {
		return nil
	}
	dec := &decoder{file: d.file, fields: map[reflect.Type]map[string][]int{}}
	dec.budget = aliasBudget(d.root)
	dec.value(d.root, rv.Elem(), Path{})
	var errs List
	for _, e := range dec.errs {
		errs = append(errs, e)
	}
	return errs.Err()
}

// aliasBudget bounds the nodes decoded, aliases expanded: a few times the
// document, so that a "billion laughs" of nested aliases stops early.
func aliasBudget(root *yaml.Node) int {
	n := 0
	var count func(*yaml.Node)
	count = func(x *yaml.Node) {
		n++
		for _, c := range x.Content {
			count(c)
		}
	}
	count(root)
	return 4*n + 10_000
}

type decoder struct {
	file   string
	errs   []*Error
	budget int
	fields map[reflect.Type]map[string][]int
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
	defaulterType   = reflect.TypeFor[Defaulter]()
	moverType       = reflect.TypeFor[KeyMover]()
	timeType        = reflect.TypeFor[time.Time]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// fail records a problem at node n.
func (d *decoder) fail(n *yaml.Node, at Path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Path: at, Msg: fmt.Sprintf(format, args...)})
}

// value decodes n into v, which is addressable.
func (d *decoder) value(n *yaml.Node, v reflect.Value, at Path) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.fail(n, at, "the document expands to too many values (aliases)")
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		d.unmarshaler(n, v, at)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(newDefault(v.Type().Elem()))
		}
		d.value(n, v.Elem(), at)
	case reflect.Struct:
		if v.Type() == timeType || reflect.PointerTo(v.Type()).Implements(textType) {
			d.scalar(n, v, at)
			return
		}
		d.structure(n, v, at)
	case reflect.Slice:
		d.list(n, v, at)
	case reflect.Map:
		d.dict(n, v, at)
	case reflect.Interface:
		d.generic(n, v, at)
	default:
		d.scalar(n, v, at)
	}
}

// unmarshaler calls a type's own UnmarshalYAML. An *Error it returns is
// taken as relative to n: its path goes under at and, unless it carries a
// line and column (of a node inside n), it is placed at n.
func (d *decoder) unmarshaler(n *yaml.Node, v reflect.Value, at Path) {
	err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n)
	for _, e := range Problems(err) {
		c := *e
		c.Path = at.Join(e.Path)
		if c.Line == 0 {
			c.Line, c.Column = n.Line, n.Column
		}
		if c.File == "" {
			c.File = d.file
		}
		d.errs = append(d.errs, &c)
	}
}

// newDefault allocates a *t holding t's defaults.
func newDefault(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if p.Type().Implements(defaulterType) {
		p.Interface().(Defaulter).SetDefaults()
	}
	return p
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// structure decodes a mapping into a struct, key by key: an unknown key, a
// duplicate key or a bad value is a problem; the other keys still decode.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, at Path) {
	if isNull(n) {
		return // `section:` with nothing under it keeps the defaults
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, at, "must be a mapping, got %s", describe(n))
		return
	}
	fields := d.fieldsOf(v.Type())
	d.eachKey(n, at, func(k, val *yaml.Node) {
		if idx, ok := fields[k.Value]; ok {
			d.value(val, v.FieldByIndex(idx), at.Key(k.Value))
			return
		}
		if msg := movedKey(v, at, k.Value, n); msg != "" {
			d.fail(k, at.Key(k.Value), "%s", msg)
			return
		}
		d.fail(k, at.Key(k.Value), "unknown field %q%s", k.Value, suggest(k.Value, fields))
	}, func(m *yaml.Node) { d.structure(m, v, at) })
}

// eachKey calls f for every key of mapping n in order, after decoding its
// merge keys (<<) with merge. It reports keys that are not plain scalars
// and keys written twice.
func (d *decoder) eachKey(n *yaml.Node, at Path, f func(k, v *yaml.Node), merge func(*yaml.Node)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			d.merge(n.Content[i+1], at, merge)
		}
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			continue
		case k.Kind != yaml.ScalarNode:
			d.fail(k, at, "a key must be a plain string, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, at.Key(k.Value), "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		f(k, val)
	}
}

// merge decodes the mappings a merge key names: one, or a list of them.
func (d *decoder) merge(n *yaml.Node, at Path, into func(*yaml.Node)) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		into(n)
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.AliasNode && c.Alias != nil {
				c = c.Alias
			}
			if c.Kind != yaml.MappingNode {
				d.fail(c, at, "a merge key (<<) takes mappings, got %s", describe(c))
				continue
			}
			into(c)
		}
	default:
		d.fail(n, at, "a merge key (<<) takes a mapping or a list of them, got %s", describe(n))
	}
}

func movedKey(v reflect.Value, at Path, key string, n *yaml.Node) string {
	var m KeyMover
	switch {
	case v.CanAddr() && v.Addr().Type().Implements(moverType):
		m = v.Addr().Interface().(KeyMover)
	case v.Type().Implements(moverType):
		m = v.Interface().(KeyMover)
	default:
		return ""
	}
	return m.MovedKey(at, key, func(k string) (string, bool) {
		c := child(n, step{key: k})
		if c == nil {
			return "", false
		}
		if c.Kind == yaml.AliasNode && c.Alias != nil {
			c = c.Alias
		}
		if c.Kind != yaml.ScalarNode {
			return "", true
		}
		return c.Value, true
	})
}

// list decodes a sequence into a slice; elements start from their defaults.
func (d *decoder) list(n *yaml.Node, v reflect.Value, at Path) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if v.Type().Elem().Kind() == reflect.Uint8 && n.Kind == yaml.ScalarNode {
		d.scalar(n, v, at) // []byte: !!binary or a string
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, at, "must be a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		e := newDefault(v.Type().Elem()).Elem()
		d.value(c, e, at.Index(i))
		out.Index(i).Set(e)
	}
	v.Set(out)
}

// dict decodes a mapping into a map with string keys.
func (d *decoder) dict(n *yaml.Node, v reflect.Value, at Path) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, at, "must be a mapping, got %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.fail(n, at, "cannot decode into %s: map keys must be strings", v.Type())
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(n.Content)/2))
	}
	set := func(k, val *yaml.Node) {
		e := newDefault(v.Type().Elem()).Elem()
		d.value(val, e, at.Key(k.Value))
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
	}
	d.eachKey(n, at, set, func(m *yaml.Node) { d.eachKey(m, at, set, func(*yaml.Node) {}) })
}

// generic decodes into an interface value as yaml.v3 does (map[string]any,
// []any, scalars), with duplicate keys reported like everywhere else.
func (d *decoder) generic(n *yaml.Node, v reflect.Value, at Path) {
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		set := func(k, val *yaml.Node) {
			var x any
			d.value(val, reflect.ValueOf(&x).Elem(), at.Key(k.Value))
			m[k.Value] = x
		}
		d.eachKey(n, at, set, func(mm *yaml.Node) { d.eachKey(mm, at, set, func(*yaml.Node) {}) })
		d.assign(n, v, at, reflect.ValueOf(m))
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			d.value(c, reflect.ValueOf(&s[i]).Elem(), at.Index(i))
		}
		d.assign(n, v, at, reflect.ValueOf(s))
	default:
		d.scalar(n, v, at)
	}
}

func (d *decoder) assign(n *yaml.Node, v reflect.Value, at Path, x reflect.Value) {
	if !x.Type().AssignableTo(v.Type()) {
		d.fail(n, at, "must be %s, got %s", want(v.Type()), describe(n))
		return
	}
	v.Set(x)
}

// scalar decodes a leaf with yaml.v3's own rules (ints, floats, bools,
// durations, times, TextUnmarshalers). A value of the wrong type is a
// problem worded here, at the value: yaml.v3's message is not used.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, at Path) {
	if n.Kind != yaml.ScalarNode && v.Kind() != reflect.Interface {
		d.fail(n, at, "must be %s, got %s", want(v.Type()), describe(n))
		return
	}
	if isInteger(v.Type()) && n.ShortTag() == "!!float" {
		// yaml.v3 would cut 1.5 to 1: only whole numbers are integers.
		var f float64
		if n.Decode(&f) != nil || f != math.Trunc(f) {
			d.fail(n, at, "must be %s, got %s", want(v.Type()), describe(n))
			return
		}
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		if n.ShortTag() == "!!int" && isInteger(v.Type()) {
			d.fail(n, at, "%s is out of range for %s", n.Value, want(v.Type()))
			return
		}
		d.fail(n, at, "must be %s, got %s", want(v.Type()), describe(n))
	}
}

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return t != durationType
	}
	return false
}

// fieldsOf maps the YAML keys of a struct type to field indexes, following
// `yaml:",inline"` embedded structs as yaml.v3 does.
func (d *decoder) fieldsOf(t reflect.Type) map[string][]int {
	if f, ok := d.fields[t]; ok {
		return f
	}
	out := map[string][]int{}
	for _, f := range yamlFields(t) {
		out[f.name] = f.index
	}
	d.fields[t] = out
	return out
}

// yamlField is one YAML key of a struct type and the index of its field.
type yamlField struct {
	name  string
	index []int
}

// yamlFields lists the YAML keys of a struct type in field order,
// following `yaml:",inline"` embedded structs as yaml.v3 does.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			out = append(out, yamlField{name: name, index: idx})
		}
	}
	walk(t, nil)
	return out
}
