package configschema

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Field names one field of a struct type, by its Go name, for Options.
type Field struct {
	Type reflect.Type
	Name string
}

// FieldOf names the field name of struct type T.
func FieldOf[T any](name string) Field { return Field{reflect.TypeFor[T](), name} }

func (f Field) String() string { return f.Type.String() + "." + f.Name }

// Options say what the types cannot.
type Options struct {
	// Title and Description head the schema and the reference.
	Title, Description string
	// Default is a value of the root type that holds the defaults of the
	// keys a file leaves out (DefaultConfig()). Nil: the root type's zero
	// value, or its SetDefaults.
	Default any
	// HideDefault lists keys of the root whose default is not shown (it
	// depends on the machine: the host name).
	HideDefault []string
	// Module is the module path and Dir its root directory: the source of
	// a type in package Module/p is read from Dir/p for its comments.
	Module, Dir string
	// Enums lists the values a field accepts.
	Enums map[Field][]any
	// Required lists the keys a struct type's mapping must have.
	Required map[reflect.Type][]string
	// OneOf lists key sets of a struct type of which a mapping has exactly
	// one (uplinks: http or mqtt).
	OneOf map[reflect.Type][]string
	// OneKey lists struct types whose mapping holds exactly one key (a rule
	// action).
	OneKey []reflect.Type
	// RequiredWhen lists keys of a struct type's mapping that are required
	// when another key has one of some values (a tls listener's tls).
	RequiredWhen map[reflect.Type][]When
}

// When makes Require required when Key is one of Values.
type When struct {
	Key     string
	Values  []any
	Require string
}

// Schema is one node of the schema: what a key accepts, with the facts the
// reference shows.
type Schema struct {
	Description string
	// Type lists the JSON types accepted ("object", "null", ...).
	Type     []string
	Enum     []any
	Pattern  string
	Minimum  *float64
	Maximum  *float64
	Default  any // nil: none
	Props    []Prop
	Closed   bool    // additionalProperties: false
	Values   *Schema // of a map's values
	Items    *Schema
	Required []string
	// OneOf: exactly one of these keys is present.
	OneOf []string
	// OneKey: the mapping holds exactly one key.
	OneKey bool
	// When: keys required when another has some values.
	When []When
	// Raw is the schema a type gives itself (JSONSchema), used as is.
	Raw map[string]any
	// Kind names the type for people: "string", "duration", "list of
	// objects".
	Kind string
}

// Prop is one key of a mapping.
type Prop struct {
	Key    string
	Schema *Schema
}

// Describer is implemented by types that decode themselves from YAML
// (yaml.Unmarshaler): JSONSchema returns the JSON Schema of their YAML
// form, and JSONSchemaKind its name for people ("byte size").
type Describer interface {
	JSONSchema() map[string]any
	JSONSchemaKind() string
}

var (
	describerType = reflect.TypeFor[Describer]()
	defaulterType = reflect.TypeFor[yamlconf.Defaulter]()
	durationType  = reflect.TypeFor[time.Duration]()
	timeType      = reflect.TypeFor[time.Time]()
)

// durationPattern is what time.ParseDuration accepts, without a sign (no
// duration setting may be negative): "0", or numbers with units.
const durationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// Generate walks the root struct type and returns its schema. Every
// key must have a description: the error lists those that have none, and
// the Options entries that name no field.
func Generate(root reflect.Type, o Options) (*Schema, error) {
	g := &generator{o: o, comments: map[string]string{}, read: map[string]bool{},
		usedEnum: map[Field]bool{}, usedReq: map[reflect.Type]bool{}}
	def := reflect.New(root).Elem()
	if o.Default != nil {
		def = reflect.ValueOf(o.Default)
	} else if reflect.PointerTo(root).Implements(defaulterType) {
		def = newDefault(root)
	}
	s := g.structure(root, def, "")
	s.Description = o.Description
	s.Type = []string{"object"}
	for _, key := range o.HideDefault {
		if p := s.prop(key); p != nil {
			p.Default = nil
		} else {
			g.errs = append(g.errs, fmt.Errorf("HideDefault: the root has no key %q", key))
		}
	}
	var stale []string // Options entries that name nothing
	for f := range o.Enums {
		if !g.usedEnum[f] {
			stale = append(stale, fmt.Sprintf("Enums: %s is not a field of the configuration", f))
		}
	}
	for what, types := range map[string][]reflect.Type{
		"Required": keysOf(o.Required), "OneOf": keysOf(o.OneOf), "RequiredWhen": keysOf(o.RequiredWhen), "OneKey": o.OneKey,
	} {
		for _, t := range types {
			if !g.usedReq[t] {
				stale = append(stale, fmt.Sprintf("%s: %s is not a type of the configuration", what, t))
			}
		}
	}
	sort.Strings(stale)
	for _, msg := range stale {
		g.errs = append(g.errs, errors.New(msg))
	}
	sort.Strings(g.undocumented)
	for _, k := range g.undocumented {
		g.errs = append(g.errs, fmt.Errorf("%s has no description: write a doc comment on its Go field", k))
	}
	return s, errors.Join(g.errs...)
}

func keysOf[V any](m map[reflect.Type]V) []reflect.Type {
	out := make([]reflect.Type, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	return out
}

func removeProp(props []Prop, key string) []Prop {
	out := props[:0:0]
	for _, p := range props {
		if p.Key != key {
			out = append(out, p)
		}
	}
	return out
}

// Section returns a copy of the schema of the root's key, as the root of a
// document of its own (a file a key includes), without the keys omit.
func (s *Schema) Section(key string, omit ...string) *Schema {
	p := s.prop(key)
	if p == nil {
		return nil
	}
	c := *p
	c.Type = []string{"object"}
	c.Default = nil
	for _, k := range omit {
		c.Props = removeProp(c.Props, k)
	}
	return &c
}

func (s *Schema) prop(key string) *Schema {
	for _, p := range s.Props {
		if p.Key == key {
			return p.Schema
		}
	}
	return nil
}

type generator struct {
	o            Options
	comments     map[string]string // "pkgpath.Type.Field" and "pkgpath.Type"
	read         map[string]bool   // packages whose comments are in
	usedEnum     map[Field]bool
	usedReq      map[reflect.Type]bool // struct types seen
	undocumented []string
	errs         []error
}

// field is one key of a struct, inline structs flattened.
type field struct {
	key    string
	sf     reflect.StructField
	owner  reflect.Type // the struct that declares it
	parent reflect.Value
}

// fields lists the keys of struct type t with their values in v, following
// `yaml:",inline"` as the decoder does.
func fields(t reflect.Type, v reflect.Value) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			out = append(out, fields(f.Type, v.Field(i))...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{key: name, sf: f, owner: t, parent: v})
	}
	return out
}

// structure is the schema of a struct type whose defaults are in def.
func (g *generator) structure(t reflect.Type, def reflect.Value, at string) *Schema {
	s := &Schema{Type: []string{"object", "null"}, Closed: true, Kind: "object"}
	fs := fields(t, def)
	keys := map[string]bool{}
	for _, f := range fs {
		keys[f.key] = true
	}
	for _, f := range fs {
		path := join(at, f.key)
		fv := f.parent.FieldByIndex([]int{indexIn(f.owner, f.sf.Name)})
		p := g.value(f.sf.Type, fv, path)
		p.Description = g.describe(f, fs)
		if p.Description == "" {
			p.Description = g.typeDoc(f.sf.Type)
		}
		if p.Description == "" {
			g.undocumented = append(g.undocumented, path)
		}
		fld := Field{f.owner, f.sf.Name}
		if vals, ok := g.o.Enums[fld]; ok {
			g.usedEnum[fld] = true
			target := p
			if p.Items != nil {
				target = p.Items
			}
			target.Enum = vals
		}
		s.Props = append(s.Props, Prop{f.key, p})
	}
	g.usedReq[t] = true // seen: its Options entries name a type
	if req, ok := g.o.Required[t]; ok {
		s.Required = g.checkKeys(t, "Required", req, keys)
	}
	if one, ok := g.o.OneOf[t]; ok {
		s.OneOf = g.checkKeys(t, "OneOf", one, keys)
	}
	for _, ot := range g.o.OneKey {
		if ot == t {
			s.OneKey = true
		}
	}
	for _, w := range g.o.RequiredWhen[t] {
		g.checkKeys(t, "RequiredWhen", []string{w.Key, w.Require}, keys)
		s.When = append(s.When, w)
	}
	return s
}

func (g *generator) checkKeys(t reflect.Type, what string, want []string, have map[string]bool) []string {
	for _, k := range want {
		if !have[k] {
			g.errs = append(g.errs, fmt.Errorf("%s: %s has no key %q", what, t, k))
		}
	}
	return want
}

func indexIn(t reflect.Type, name string) int {
	f, _ := t.FieldByName(name)
	return f.Index[len(f.Index)-1]
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

// value is the schema of a value of type t whose default is def (invalid:
// none).
func (g *generator) value(t reflect.Type, def reflect.Value, at string) *Schema {
	if t.Implements(describerType) {
		d := reflect.Zero(t).Interface().(Describer)
		return &Schema{Raw: d.JSONSchema(), Kind: d.JSONSchemaKind(), Default: defaultOf(def)}
	}
	switch {
	case t == durationType:
		return &Schema{Type: []string{"string"}, Pattern: durationPattern, Kind: "duration", Default: defaultOf(def)}
	case t == timeType:
		return &Schema{Type: []string{"string"}, Kind: "time", Default: defaultOf(def)}
	}
	switch t.Kind() {
	case reflect.Pointer:
		var inner reflect.Value
		if def.IsValid() && !def.IsNil() {
			inner = def.Elem()
		} else {
			inner = newDefault(t.Elem())
		}
		s := g.value(t.Elem(), inner, at)
		if def.IsValid() && def.IsNil() {
			s.Default = nil
		}
		if !contains(s.Type, "null") && s.Raw == nil && len(s.Type) > 0 {
			s.Type = append(s.Type, "null")
		}
		return s
	case reflect.Struct:
		return g.structure(t, def, at)
	case reflect.Slice:
		s := &Schema{Type: []string{"array", "null"}, Items: g.value(t.Elem(), newDefault(t.Elem()), at+"[]"), Default: defaultOf(def)}
		s.Kind = "list of " + plural(s.Items.Kind)
		return s
	case reflect.Map:
		s := &Schema{Type: []string{"object", "null"}, Values: g.value(t.Elem(), newDefault(t.Elem()), at+".<name>"), Default: defaultOf(def)}
		s.Kind = "mapping of names to " + plural(s.Values.Kind)
		return s
	case reflect.Interface:
		return &Schema{Kind: "any value"}
	case reflect.Bool:
		return &Schema{Type: []string{"boolean"}, Kind: "boolean", Default: defaultOf(def)}
	case reflect.String:
		return &Schema{Type: []string{"string"}, Kind: "string", Default: defaultOf(def)}
	case reflect.Float32, reflect.Float64:
		return &Schema{Type: []string{"number"}, Kind: "number", Default: defaultOf(def)}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &Schema{Type: []string{"integer"}, Kind: "integer", Default: defaultOf(def)}
	}
	g.errs = append(g.errs, fmt.Errorf("%s: no schema for Go type %s", at, t))
	return &Schema{}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func plural(kind string) string {
	switch {
	case kind == "any value":
		return "any values"
	case strings.HasPrefix(kind, "list of "), strings.HasPrefix(kind, "mapping of "):
		return kind
	case strings.HasSuffix(kind, "s"):
		return kind + "es"
	}
	return kind + "s"
}

// newDefault is a value of t with its defaults, as the decoder allocates
// one for a list element, map value or pointer target.
func newDefault(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if p.Type().Implements(defaulterType) {
		p.Interface().(yamlconf.Defaulter).SetDefaults()
	}
	return p.Elem()
}

// defaultOf is the JSON form of a default value, or nil when it is not
// worth showing: a zero value that is not a boolean.
func defaultOf(v reflect.Value) any {
	if !v.IsValid() || (v.IsZero() && v.Kind() != reflect.Bool) {
		return nil
	}
	return jsonValue(v)
}

// jsonValue writes v as its YAML form would read: durations and sizes as
// strings, structs as mappings of their non-zero keys.
func jsonValue(v reflect.Value) any {
	if v.Type() == durationType {
		return formatDuration(time.Duration(v.Int()))
	}
	if s, ok := v.Interface().(fmt.Stringer); ok && v.Type().Implements(describerType) {
		return s.String()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return jsonValue(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for _, f := range fields(v.Type(), v) {
			fv := f.parent.FieldByIndex([]int{indexIn(f.owner, f.sf.Name)})
			if !fv.IsZero() {
				m[f.key] = jsonValue(fv)
			}
		}
		return m
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = jsonValue(v.Index(i))
		}
		return out
	case reflect.Map:
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			m[k.String()] = jsonValue(v.MapIndex(k))
		}
		return m
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	}
	return v.Interface()
}

// formatDuration writes d in its largest whole unit: 168h, 30s, 200ms.
func formatDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.d == 0 {
			return fmt.Sprint(int64(d/u.d)) + u.name
		}
	}
	return d.String()
}

// describe is the description of field f: its doc comment, Go names of
// the struct's fields turned into their keys.
func (g *generator) describe(f field, siblings []field) string {
	text := g.comment(f.owner, f.sf.Name)
	if text == "" {
		return ""
	}
	names := map[string]string{}
	for _, s := range siblings {
		names[s.sf.Name] = s.key
	}
	return goNamesToKeys(text, f.sf.Name, names)
}

// goNamesToKeys replaces, in text, the field's own name as its first word
// and the CamelCase names of its sibling fields with `key`.
func goNamesToKeys(text, self string, names map[string]string) string {
	var b strings.Builder
	first := true
	for i := 0; i < len(text); {
		r := rune(text[i])
		if !isWordByte(r) {
			b.WriteByte(text[i])
			i++
			continue
		}
		j := i
		for j < len(text) && isWordByte(rune(text[j])) {
			j++
		}
		word := text[i:j]
		key, ok := names[word]
		switch {
		case ok && first && word == self,
			ok && (i == 0 || text[i-1] != '.') && (camel(word) || capitalized(word) && !sentenceStart(text[:i])):
			b.WriteString("`" + key + "`")
		default:
			b.WriteString(word)
		}
		first = false
		i = j
	}
	return b.String()
}

func isWordByte(r rune) bool {
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

// capitalized reports whether a word is a capital followed by lower case
// letters (Listen, not TLS).
func capitalized(w string) bool {
	if len(w) < 2 || !unicode.IsUpper(rune(w[0])) {
		return false
	}
	for _, r := range w[1:] {
		if !unicode.IsLower(r) {
			return false
		}
	}
	return true
}

// sentenceStart reports whether a word after before starts a sentence.
func sentenceStart(before string) bool {
	t := strings.TrimRight(before, " \n\t")
	return t == "" || strings.HasSuffix(t, ".") || strings.HasSuffix(t, ":")
}

// camel reports whether a word is a Go CamelCase name (MaxAge): an upper
// case letter after a lower case one.
func camel(w string) bool {
	for i := 1; i < len(w); i++ {
		if unicode.IsUpper(rune(w[i])) && unicode.IsLower(rune(w[i-1])) {
			return true
		}
	}
	return false
}
