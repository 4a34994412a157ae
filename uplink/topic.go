package uplink

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/edgegate/edgegate/cloudevent"
)

// topicVars are the variables a topic template may use.
var topicVars = []string{"gateway_id", "type", "source", "subject", "id"}

// maxTopicLen is the MQTT limit on a topic name's UTF-8 length.
const maxTopicLen = 65535

// topicPart is a literal (variable == "") or a variable.
type topicPart struct {
	literal  string
	variable string
}

// parseTopicTemplate splits a template like "a/{type}/b" into parts.
func parseTopicTemplate(t string) ([]topicPart, error) {
	if t == "" {
		return nil, errors.New("is required")
	}
	if !utf8.ValidString(t) || strings.ContainsRune(t, 0) {
		return nil, errors.New("must be valid UTF-8 without NUL")
	}
	var parts []topicPart
	for rest := t; rest != ""; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			parts = append(parts, topicPart{literal: rest})
			break
		}
		if rest[i] == '}' {
			return nil, errors.New("unbalanced '}'")
		}
		if i > 0 {
			parts = append(parts, topicPart{literal: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, errors.New("unclosed '{'")
		}
		name := rest[i+1 : i+j]
		known := false
		for _, v := range topicVars {
			known = known || v == name
		}
		if !known {
			return nil, fmt.Errorf("unknown variable {%s} (known: {%s})", name, strings.Join(topicVars, "}, {"))
		}
		parts = append(parts, topicPart{variable: name})
		rest = rest[i+j+1:]
	}
	for _, p := range parts {
		if strings.ContainsAny(p.literal, "+#") {
			return nil, errors.New("must not contain the wildcards '+' or '#'")
		}
	}
	return parts, nil
}

// checkTopicTemplate validates a template for Config.Validate.
func checkTopicTemplate(t string) error {
	_, err := parseTopicTemplate(t)
	return err
}

// topicTemplate expands a template with a record's attributes.
type topicTemplate struct {
	parts     []topicPart
	gatewayID string
	static    string // the whole topic when it uses no event variable
}

func newTopicTemplate(t, gatewayID string) (*topicTemplate, error) {
	parts, err := parseTopicTemplate(t)
	if err != nil {
		return nil, err
	}
	tt := &topicTemplate{parts: parts, gatewayID: gatewayID}
	usesEvent := false
	for _, p := range parts {
		if p.variable == "gateway_id" && gatewayID == "" {
			return nil, errors.New("uses {gateway_id} but the gateway id is not set")
		}
		usesEvent = usesEvent || (p.variable != "" && p.variable != "gateway_id")
	}
	if !usesEvent {
		tt.static = tt.expand(nil)
	}
	return tt, nil
}

// usesGatewayID reports whether a template refers to {gateway_id}.
func usesGatewayID(t string) bool { return strings.Contains(t, "{gateway_id}") }

func (t *topicTemplate) expand(e *cloudevent.Event) string {
	var sb strings.Builder
	for _, p := range t.parts {
		if p.variable == "" {
			sb.WriteString(p.literal)
			continue
		}
		var v string
		switch p.variable {
		case "gateway_id":
			v = t.gatewayID
		case "type":
			v = e.Type
		case "source":
			v = e.Source
		case "subject":
			v = e.Subject
		case "id":
			v = e.ID
		}
		sb.WriteString(topicSafe(v))
	}
	return sb.String()
}

// topicSafe replaces characters a topic name must not contain (the
// wildcards and NUL) with '_'. '/' is kept: a source or subject with
// slashes spans several topic levels.
func topicSafe(v string) string {
	if !strings.ContainsAny(v, "+#\x00") {
		return v
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '+', '#', 0:
			return '_'
		}
		return r
	}, v)
}

// topicFor checks an event and returns its topic. Errors mean the event
// can never be published (permanent).
func (t *topicTemplate) topicFor(e *cloudevent.Event) (string, error) {
	if err := e.Validate(); err != nil {
		return "", fmt.Errorf("invalid cloudevent: %w", err)
	}
	if t.static != "" {
		return t.static, nil
	}
	topic := t.expand(e)
	switch {
	case topic == "":
		return "", errors.New("topic template expands to an empty topic")
	case len(topic) > maxTopicLen:
		return "", fmt.Errorf("topic longer than %d bytes", maxTopicLen)
	case !utf8.ValidString(topic):
		return "", errors.New("topic is not valid UTF-8")
	}
	return topic, nil
}
