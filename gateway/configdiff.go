package gateway

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// diffPaths lists the paths (as yamlconf writes them: uplinks[0].http.url)
// of the keys whose values differ between two configurations, defaults
// filled in. It names keys only, never values, so a changed secret shows
// as its path.
func diffPaths(old, cfg Config) []string {
	var out []string
	diffValue(reflect.ValueOf(old), reflect.ValueOf(cfg), yamlconf.Path{}, &out)
	return out
}

func diffValue(a, b reflect.Value, at yamlconf.Path, out *[]string) {
	if reflect.DeepEqual(a.Interface(), b.Interface()) {
		return
	}
	add := func(p yamlconf.Path) { *out = append(*out, p.String()) }
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			add(at)
			return
		}
		diffValue(a.Elem(), b.Elem(), at, out)
	case reflect.Struct:
		if reflect.PointerTo(a.Type()).Implements(yamlUnmarshaler) {
			add(at) // decoded its own way: one value
			return
		}
		found := false
		for i := 0; i < a.NumField(); i++ {
			f := a.Type().Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			found = true
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			p := at.Key(name)
			if opts == "inline" {
				p = at
			}
			diffValue(a.Field(i), b.Field(i), p, out)
		}
		if !found {
			add(at)
		}
	case reflect.Slice, reflect.Array:
		if reflect.PointerTo(a.Type()).Implements(yamlUnmarshaler) {
			add(at) // decoded its own way: one value
			return
		}
		for i := 0; i < max(a.Len(), b.Len()); i++ {
			if i >= a.Len() || i >= b.Len() {
				add(at.Index(i))
				continue
			}
			diffValue(a.Index(i), b.Index(i), at.Index(i), out)
		}
	case reflect.Map:
		keys := map[string]reflect.Value{}
		for _, k := range append(a.MapKeys(), b.MapKeys()...) {
			keys[fmt.Sprint(k.Interface())] = k
		}
		names := make([]string, 0, len(keys))
		for n := range keys {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			av, bv := a.MapIndex(keys[n]), b.MapIndex(keys[n])
			if !av.IsValid() || !bv.IsValid() {
				add(at.Key(n))
				continue
			}
			diffValue(av, bv, at.Key(n), out)
		}
	default:
		add(at)
	}
}

var yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// redactedValue replaces every secret of a configuration shown by GET
// /v1/config.
const redactedValue = "<redacted>"

// secretKey reports whether a mapping key holds a secret: a token, a
// password, a hash of one, a private key. Keys naming files (…_file) hold
// paths and stay.
func secretKey(k string) bool {
	switch k {
	case "token", "bearer_token", "password", "password_hash", "hash", "secret", "private_key":
		return true
	}
	return strings.HasSuffix(k, "_token") || strings.HasSuffix(k, "_secret") || strings.HasSuffix(k, "_password")
}

// redactDocument returns a configuration document with the value of every
// secret key, and every HTTP header value (an Authorization header is a
// credential), replaced by <redacted>. Comments and key order stay.
func redactDocument(data []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	redactNode(&root, false)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	enc.Close()
	return b.Bytes(), nil
}

// redactNode redacts under n; all redacts every scalar (the values of a
// headers map).
func redactNode(n *yaml.Node, all bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c, all)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch {
			case all || secretKey(k.Value):
				redactAll(v)
			case k.Value == "headers":
				redactNode(v, true)
			default:
				redactNode(v, false)
			}
		}
	case yaml.ScalarNode:
		if all {
			redactAll(n)
		}
	case yaml.AliasNode:
		// An alias repeats a node redacted where it is defined.
	}
}

// redactAll replaces every scalar under n.
func redactAll(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		n.Value, n.Tag, n.Style = redactedValue, "!!str", 0
	case yaml.SequenceNode, yaml.MappingNode:
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				continue // keys stay
			}
			redactAll(c)
		}
	}
}
