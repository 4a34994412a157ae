package yamlconf

import (
	"fmt"
	"reflect"
	"sort"

	"go.yaml.in/yaml/v3"
)

// The words of the decoder's messages: what a field wants, what the file
// has, and the key a misspelt one was probably meant to be.

// want names what a Go type accepts, for messages.
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 10s, 1m30s or 2h"
	case t == timeType:
		return "a time such as 2026-01-01T00:00:00Z"
	case isInteger(t):
		return "an integer"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a value of type " + t.String()
}

// describe names a node's kind and, for a scalar, its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", v)
	case "!!int":
		return "the integer " + v
	case "!!float":
		return "the number " + v
	case "!!bool":
		return v
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("%q", v)
}

// suggest proposes the known key closest to a misspelt one.
func suggest(key string, fields map[string][]int) string {
	best, limit := "", 1+len(key)/4
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if dist := editDistance(key, name); dist <= limit {
			best, limit = name, dist-1
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of two short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
