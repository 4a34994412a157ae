package cloudevent

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// maxVars bounds the named variables of one match pattern, so matching needs
// no allocation.
const maxVars = 8

type segKind uint8

const (
	segLiteral segKind = iota
	segVar             // {name} or +: exactly one level
	segRest            // #: the remaining levels (possibly none)
)

type segment struct {
	kind  segKind
	text  string // literal text
	index int    // variable slot for a named {name}; -1 for + and #
}

// Template parts refer to a match variable, a built-in or literal text.
const (
	partLiteral = iota
	partVar
	partGateway
	partTopic
	partClient
)

type part struct {
	kind  int
	text  string
	index int
}

type compiledTopic struct {
	segments []segment
	source   []part
	typ      []part
	subject  []part
	// plainSource: the source template starts with "/" (not "//") and its
	// literal text has only characters a URI path keeps as they are, so an
	// expansion is a URI reference that parses back to itself.
	plainSource bool
}

func compileTopic(t Topic) (compiledTopic, error) {
	var errs yamlconf.List
	var ct compiledTopic
	names := map[string]int{}
	match := yamlconf.Key("match")
	if t.Match == "" {
		errs.Add(match, "must not be empty")
	}
	levels := strings.Split(t.Match, "/")
	for i, lv := range levels {
		switch {
		case t.Match == "":
		case lv == "#":
			if i != len(levels)-1 {
				errs.Add(match, "%q: # must be the last level", t.Match)
			}
			ct.segments = append(ct.segments, segment{kind: segRest, index: -1})
		case lv == "+":
			ct.segments = append(ct.segments, segment{kind: segVar, index: -1})
		case strings.HasPrefix(lv, "{") && strings.HasSuffix(lv, "}"):
			name := lv[1 : len(lv)-1]
			if !validName(name) {
				errs.Add(match, "%q: variable %q must be letters, digits or _", t.Match, name)
				continue
			}
			if _, dup := names[name]; dup {
				errs.Add(match, "%q: variable {%s} appears twice", t.Match, name)
				continue
			}
			if builtin(name) >= 0 {
				errs.Add(match, "%q: {%s} is a built-in variable and cannot be matched", t.Match, name)
				continue
			}
			if len(names) == maxVars {
				errs.Add(match, "%q: more than %d variables", t.Match, maxVars)
				continue
			}
			names[name] = len(names)
			ct.segments = append(ct.segments, segment{kind: segVar, index: names[name]})
		case strings.ContainsAny(lv, "{}+#"):
			errs.Add(match, "%q: level %q mixes a wildcard or variable with text", t.Match, lv)
		default:
			ct.segments = append(ct.segments, segment{kind: segLiteral, text: lv})
		}
	}
	t = t.withDefaults(names)
	var err error
	if ct.source, err = parseTemplate(t.Source, names); err != nil {
		errs.Add(yamlconf.Key("source"), "%v", err)
	} else if _, err := url.Parse(renderForCheck(ct.source)); err != nil {
		errs.Add(yamlconf.Key("source"), "%q is not a URI reference: %v", t.Source, err)
	}
	ct.plainSource = plainPath(ct.source)
	if ct.typ, err = parseTemplate(t.Type, names); err != nil {
		errs.Add(yamlconf.Key("type"), "%v", err)
	}
	if ct.subject, err = parseTemplate(t.Subject, names); err != nil {
		errs.Add(yamlconf.Key("subject"), "%v", err)
	}
	return ct, errs.Err()
}

// plainPath reports whether a URI template is a path-absolute reference
// whose literal text net/url parses and writes back unchanged: it starts
// with "/" but not "//", and holds only unreserved characters, "/" and
// the sub-delimiters, ':' and '@' (no '%', '?' or '#'). Variables are
// path-escaped, which keeps that true.
func plainPath(parts []part) bool {
	if len(parts) == 0 || parts[0].kind != partLiteral || !strings.HasPrefix(parts[0].text, "/") || strings.HasPrefix(parts[0].text, "//") {
		return false
	}
	for _, p := range parts {
		if p.kind != partLiteral {
			continue
		}
		for i := 0; i < len(p.text); i++ {
			c := p.text[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/!$&'()*+,;=:@", c) >= 0) {
				return false
			}
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func builtin(name string) int {
	switch name {
	case "gateway_id":
		return partGateway
	case "topic":
		return partTopic
	case "client_id":
		return partClient
	}
	return -1
}

func parseTemplate(s string, names map[string]int) ([]part, error) {
	var parts []part
	for s != "" {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			if strings.IndexByte(s, '}') >= 0 {
				return nil, fmt.Errorf("unmatched } in template")
			}
			parts = append(parts, part{kind: partLiteral, text: s})
			break
		}
		if open > 0 {
			if strings.IndexByte(s[:open], '}') >= 0 {
				return nil, fmt.Errorf("unmatched } in template")
			}
			parts = append(parts, part{kind: partLiteral, text: s[:open]})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed { in template")
		}
		name := s[open+1 : open+end]
		if k := builtin(name); k >= 0 {
			parts = append(parts, part{kind: k})
		} else if i, ok := names[name]; ok {
			parts = append(parts, part{kind: partVar, index: i})
		} else {
			return nil, fmt.Errorf("unknown variable {%s}: use a variable of match, {gateway_id}, {topic} or {client_id}", name)
		}
		s = s[open+end+1:]
	}
	return parts, nil
}

// renderForCheck expands a template with harmless values to check its
// literal text is a URI reference.
func renderForCheck(parts []part) string {
	var b strings.Builder
	for _, p := range parts {
		if p.kind == partLiteral {
			b.WriteString(p.text)
		} else {
			b.WriteString("x")
		}
	}
	return b.String()
}

// match returns the first template whose pattern matches topic, filling
// vars, or the generic template, or nil.
func (mp *Mapper) match(topic string, vars *[maxVars]string) *compiledTopic {
	for i := range mp.topics {
		if matchTopic(mp.topics[i].segments, topic, vars) {
			return &mp.topics[i]
		}
	}
	return mp.generic
}

func matchTopic(segs []segment, topic string, vars *[maxVars]string) bool {
	rest := topic
	for i, s := range segs {
		if s.kind == segRest {
			return true
		}
		level, tail, more := strings.Cut(rest, "/")
		switch s.kind {
		case segLiteral:
			if level != s.text {
				return false
			}
		case segVar:
			if s.index >= 0 {
				vars[s.index] = level
			}
		}
		if !more {
			return i == len(segs)-1 || (i == len(segs)-2 && segs[i+1].kind == segRest)
		}
		rest = tail
		if i == len(segs)-1 {
			return false // topic has more levels than the pattern
		}
	}
	return false
}

type expander struct {
	vars      *[maxVars]string
	gatewayID string
	msg       *Message
}

// appendTo renders a template onto dst. In URI templates every value is
// path-escaped so that any topic level gives a valid URI reference.
func (x expander) appendTo(dst []byte, parts []part, uri bool) []byte {
	for _, p := range parts {
		var v string
		switch p.kind {
		case partLiteral:
			dst = append(dst, p.text...)
			continue
		case partVar:
			v = x.vars[p.index]
		case partGateway:
			v = x.gatewayID
		case partTopic:
			v = x.msg.Topic
		case partClient:
			v = x.msg.ClientID
		}
		v = SanitizeString(v)
		if uri {
			v = url.PathEscape(v)
		}
		dst = append(dst, v...)
	}
	return dst
}
