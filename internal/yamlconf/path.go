package yamlconf

import (
	"strconv"
	"strings"
)

// Path is the location of a value in a configuration document: a sequence
// of mapping keys and list indexes from a section's root. It is immutable:
// Key and Index return new paths. The zero Path is the root.
type Path struct {
	steps []step
}

type step struct {
	key   string
	index int // used when isIndex
	isIdx bool
}

// Key returns the root path of a top-level key.
func Key(k string) Path { return Path{}.Key(k) }

// Key returns p extended by a mapping key. The key may contain dots.
func (p Path) Key(k string) Path { return p.with(step{key: k}) }

// Index returns p extended by a list index.
func (p Path) Index(i int) Path { return p.with(step{index: i, isIdx: true}) }

// Join returns p followed by q.
func (p Path) Join(q Path) Path {
	out := make([]step, 0, len(p.steps)+len(q.steps))
	return Path{steps: append(append(out, p.steps...), q.steps...)}
}

func (p Path) with(s step) Path {
	out := make([]step, len(p.steps), len(p.steps)+1)
	copy(out, p.steps)
	return Path{steps: append(out, s)}
}

// IsRoot reports whether p has no steps.
func (p Path) IsRoot() bool { return len(p.steps) == 0 }

// CutPrefix returns p without prefix and true when p starts with prefix.
func (p Path) CutPrefix(prefix Path) (Path, bool) {
	if len(prefix.steps) > len(p.steps) {
		return p, false
	}
	for i, s := range prefix.steps {
		if p.steps[i] != s {
			return p, false
		}
	}
	return Path{steps: p.steps[len(prefix.steps):]}, true
}

// String writes the path as users read it: keys joined with dots and
// indexes in brackets, e.g. uplinks[0].http.url. Keys are written as they
// are, so a set target reads rules[2].actions[0].set.data.version.
func (p Path) String() string {
	var b strings.Builder
	for i, s := range p.steps {
		if s.isIdx {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}
