package access

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// A topic filter template is an MQTT topic filter whose levels may hold
// %u (the authenticated identity) and %c (the client id); %% is a literal
// '%'. Wildcards take a whole level, as in MQTT: '+' one level, '#' the
// rest (last level only).
//
// A template grants a topic (publish) when the topic matches it, and a
// subscription filter when every topic the filter matches is matched by
// the template. A variable matches only a value that is one non-empty
// level (no '/', '+', '#' or NUL): an anonymous client's %u, or a client id
// "a/b", match nothing. A topic or filter whose first level starts with '$'
// is granted only by a template whose first level names it literally
// (never by a wildcard or a variable), so '#' never grants $SYS.

// template is a compiled topic filter template.
type template struct {
	src    string
	levels []level
}

type levelKind uint8

const (
	levelLiteral levelKind = iota
	levelPlus              // +
	levelHash              // #
	levelVars              // literal text and variables
)

type level struct {
	kind  levelKind
	text  string // levelLiteral
	parts []part // levelVars
}

// part is a literal (v == 0) or a variable ('u' or 'c') of a level.
type part struct {
	v   byte
	lit string
}

// maxTemplateBytes is the longest topic filter MQTT can carry.
const maxTemplateBytes = 65535

// compileTemplate parses a topic filter template.
func compileTemplate(src string) (template, error) {
	t := template{src: src}
	switch {
	case src == "":
		return t, errors.New("must not be empty")
	case len(src) > maxTemplateBytes:
		return t, fmt.Errorf("longer than %d bytes", maxTemplateBytes)
	case !utf8.ValidString(src):
		return t, errors.New("not valid UTF-8")
	case strings.ContainsRune(src, 0):
		return t, errors.New("contains NUL")
	}
	levels := strings.Split(src, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return t, errors.New("'#' must be the last level")
			}
			t.levels = append(t.levels, level{kind: levelHash})
		case l == "+":
			t.levels = append(t.levels, level{kind: levelPlus})
		case strings.ContainsAny(l, "+#"):
			return t, fmt.Errorf("level %q: a wildcard ('+' or '#') must be a whole level", l)
		case strings.Contains(l, "%"):
			parts, err := compileVars(l)
			if err != nil {
				return t, fmt.Errorf("level %q: %w", l, err)
			}
			t.levels = append(t.levels, parts)
		default:
			t.levels = append(t.levels, level{kind: levelLiteral, text: l})
		}
	}
	if first := t.levels[0]; first.kind == levelVars && first.parts[0].v == 0 && strings.HasPrefix(first.parts[0].lit, "$") {
		return t, errors.New("a '$' topic must be named literally: no %u or %c in its first level")
	}
	return t, nil
}

// compileVars splits a level with '%' into literal and variable parts.
func compileVars(l string) (level, error) {
	var parts []part
	var lit strings.Builder
	for i := 0; i < len(l); i++ {
		if l[i] != '%' {
			lit.WriteByte(l[i])
			continue
		}
		if i+1 == len(l) {
			return level{}, errors.New("'%' at the end: want %u, %c or %%")
		}
		i++
		switch c := l[i]; c {
		case '%':
			lit.WriteByte('%')
		case 'u', 'c':
			if lit.Len() > 0 {
				parts = append(parts, part{lit: lit.String()})
				lit.Reset()
			}
			parts = append(parts, part{v: c})
		default:
			return level{}, fmt.Errorf("unknown variable %%%c: want %%u, %%c or %%%%", c)
		}
	}
	if lit.Len() > 0 {
		parts = append(parts, part{lit: lit.String()})
	}
	if len(parts) == 1 && parts[0].v == 0 { // only %% escapes
		return level{kind: levelLiteral, text: parts[0].lit}, nil
	}
	return level{kind: levelVars, parts: parts}, nil
}

// vars are the values of %u and %c for one client; a value that is not
// one valid level is "" (matches nothing).
type vars struct {
	u, c string
}

func newVars(user, clientID string) vars {
	return vars{u: levelValue(user), c: levelValue(clientID)}
}

// levelValue returns s if it can stand for one topic level, else "".
func levelValue(s string) string {
	if s == "" || strings.ContainsAny(s, "/+#\x00") {
		return ""
	}
	return s
}

// matchVars reports whether the topic level s is the level l with its
// variables replaced.
func (l *level) matchVars(s string, vs vars) bool {
	for _, p := range l.parts {
		want := p.lit
		switch p.v {
		case 'u':
			want = vs.u
		case 'c':
			want = vs.c
		}
		if p.v != 0 && want == "" {
			return false
		}
		var ok bool
		if s, ok = strings.CutPrefix(s, want); !ok {
			return false
		}
	}
	return s == ""
}

// nextLevel splits the first level off a topic or filter: the level, the
// rest after its '/', and whether there was a '/'.
func nextLevel(s string) (lvl, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// matchTopic reports whether topic (a topic name, no wildcards) is granted.
func (t *template) matchTopic(topic string, vs vars) bool {
	dollar := strings.HasPrefix(topic, "$")
	rest, more := topic, true
	for i := range t.levels {
		l := &t.levels[i]
		if l.kind == levelHash { // the parent level and everything below
			return !(i == 0 && dollar)
		}
		if !more {
			return false
		}
		var s string
		s, rest, more = nextLevel(rest)
		switch l.kind {
		case levelLiteral:
			if s != l.text {
				return false
			}
		case levelPlus:
			if i == 0 && dollar {
				return false
			}
		case levelVars:
			if (i == 0 && dollar) || !l.matchVars(s, vs) {
				return false
			}
		}
	}
	return !more
}

// covers reports whether every topic filter matches is granted: filter is
// a subscription's topic filter (wildcards allowed, no $share prefix).
func (t *template) covers(filter string, vs vars) bool {
	dollar := strings.HasPrefix(filter, "$")
	rest, more := filter, true
	for i := range t.levels {
		l := &t.levels[i]
		if l.kind == levelHash {
			return !(i == 0 && dollar)
		}
		if !more {
			return false
		}
		var s string
		s, rest, more = nextLevel(rest)
		switch {
		case s == "#":
			return false // only a '#' covers a '#'
		case s == "+":
			if l.kind != levelPlus {
				return false
			}
		case l.kind == levelLiteral:
			if s != l.text {
				return false
			}
		case l.kind == levelPlus:
			if i == 0 && dollar {
				return false
			}
		case l.kind == levelVars:
			if (i == 0 && dollar) || !l.matchVars(s, vs) {
				return false
			}
		}
	}
	return !more
}
