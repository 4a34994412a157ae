package yamlconf

import (
	"fmt"
	"reflect"
	"slices"
)

// Diff returns the paths at which a and b, two values of one type as
// Decode fills them, differ, in field order: the leaves that changed
// (rules[0].when, mqtt.listeners[1].address), an entry added to or
// removed from a list (its index) or a map (its key), a pointer section
// set or unset. Keys are the YAML keys (tags). A value that decodes
// itself (UnmarshalYAML, UnmarshalText, time.Time) is one leaf. A struct
// that differs only in fields without a YAML key (derived values) is
// reported at its own path. It returns nil when a and b are equal, and
// the root path alone when their types differ.
func Diff(a, b any) []Path {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if !va.IsValid() || !vb.IsValid() || va.Type() != vb.Type() {
		if reflect.DeepEqual(a, b) {
			return nil
		}
		return []Path{{}}
	}
	var out []Path
	diff(Path{}, va, vb, &out)
	return out
}

func diff(at Path, a, b reflect.Value, out *[]Path) {
	t := a.Type()
	leaf := func() {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, at)
		}
	}
	if !a.CanInterface() {
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textType) || t == timeType {
		leaf()
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() || b.IsNil():
			*out = append(*out, at)
		default:
			diff(at, a.Elem(), b.Elem(), out)
		}
	case reflect.Struct:
		fields := yamlFields(t)
		for _, f := range fields {
			diff(at.Key(f.name), a.FieldByIndex(f.index), b.FieldByIndex(f.index), out)
		}
		if !reflect.DeepEqual(unkeyed(a, fields), unkeyed(b, fields)) {
			*out = append(*out, at) // what differs has no key of its own
		}
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
			return // nil and empty read the same
		}
		common := min(a.Len(), b.Len())
		for i := range common {
			diff(at.Index(i), a.Index(i), b.Index(i), out)
		}
		for i := common; i < max(a.Len(), b.Len()); i++ {
			*out = append(*out, at.Index(i))
		}
	case reflect.Map:
		keys := map[string]reflect.Value{}
		var names []string
		for _, m := range []reflect.Value{a, b} {
			for _, k := range m.MapKeys() {
				name := fmt.Sprint(k.Interface())
				if _, ok := keys[name]; !ok {
					keys[name] = k
					names = append(names, name)
				}
			}
		}
		slices.Sort(names)
		for _, name := range names {
			k := keys[name]
			x, y := a.MapIndex(k), b.MapIndex(k)
			if !x.IsValid() || !y.IsValid() {
				*out = append(*out, at.Key(name))
				continue
			}
			diff(at.Key(name), x, y, out)
		}
	default:
		leaf()
	}
}

// unkeyed returns a copy of the struct v with its YAML-keyed fields zeroed:
// what is left are the fields without a key (unexported, `yaml:"-"`).
func unkeyed(v reflect.Value, fields []yamlField) any {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	for _, f := range fields {
		c.FieldByIndex(f.index).SetZero()
	}
	return c.Interface()
}
