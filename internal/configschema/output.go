package configschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// draft07 is the dialect of the schema: the one VS Code's YAML extension
// (yaml-language-server) supports best.
const draft07 = "http://json-schema.org/draft-07/schema#"

// JSON writes the schema as a draft-07 JSON Schema document titled title,
// keys in the order of the Go fields, indented, ending in a newline.
func (s *Schema) JSON(title string) ([]byte, error) {
	var w jsonWriter
	w.node(s, []kv{{"$schema", draft07}, {"title", title}})
	if w.err != nil {
		return nil, w.err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, w.buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

type kv struct {
	k string
	v any
}

type jsonWriter struct {
	buf bytes.Buffer
	err error
}

func (w *jsonWriter) scalar(v any) {
	b, err := json.Marshal(v)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.buf.Write(b)
}

// node writes s as an object, after the keys in head.
func (w *jsonWriter) node(s *Schema, head []kv) {
	w.buf.WriteByte('{')
	n := 0
	key := func(k string) {
		if n > 0 {
			w.buf.WriteByte(',')
		}
		n++
		w.scalar(k)
		w.buf.WriteByte(':')
	}
	for _, h := range head {
		key(h.k)
		w.scalar(h.v)
	}
	if s.Description != "" {
		// Plain text for every editor; VS Code shows the Markdown one on
		// hover, keys in backticks as code.
		key("description")
		w.scalar(strings.ReplaceAll(s.Description, "`", ""))
		if md := markdownText(s.Description); strings.Contains(md, "`") {
			key("markdownDescription")
			w.scalar(md)
		}
	}
	switch len(s.Type) {
	case 0:
	case 1:
		key("type")
		w.scalar(s.Type[0])
	default:
		key("type")
		w.scalar(s.Type)
	}
	if s.Enum != nil {
		key("enum")
		w.scalar(s.Enum)
	}
	if s.Pattern != "" {
		key("pattern")
		w.scalar(s.Pattern)
	}
	if s.Minimum != nil {
		key("minimum")
		w.scalar(*s.Minimum)
	}
	if s.Maximum != nil {
		key("maximum")
		w.scalar(*s.Maximum)
	}
	if s.Default != nil {
		key("default")
		w.scalar(s.Default)
	}
	rawKeys := make([]string, 0, len(s.Raw))
	for k := range s.Raw {
		rawKeys = append(rawKeys, k)
	}
	sort.Strings(rawKeys)
	for _, k := range rawKeys {
		key(k)
		w.scalar(s.Raw[k])
	}
	if s.Props != nil || s.Closed {
		key("properties")
		w.buf.WriteByte('{')
		for i, p := range s.Props {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.scalar(p.Key)
			w.buf.WriteByte(':')
			w.node(p.Schema, nil)
		}
		w.buf.WriteByte('}')
	}
	if len(s.Required) > 0 {
		key("required")
		w.scalar(s.Required)
	}
	if s.Closed {
		key("additionalProperties")
		w.scalar(false)
	}
	if s.Values != nil {
		key("additionalProperties")
		w.node(s.Values, nil)
	}
	if s.Items != nil {
		key("items")
		w.node(s.Items, nil)
	}
	if len(s.OneOf) > 0 {
		// A mapping (not null) with exactly one of the keys.
		key("oneOf")
		w.buf.WriteByte('[')
		for i, k := range s.OneOf {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.scalar(map[string]any{"required": []string{k}})
		}
		w.buf.WriteByte(']')
	}
	if len(s.When) > 0 {
		key("allOf")
		conds := make([]any, len(s.When))
		for i, c := range s.When {
			conds[i] = map[string]any{
				"if": map[string]any{
					"properties": map[string]any{c.Key: map[string]any{"enum": c.Values}},
					"required":   []string{c.Key},
				},
				"then": map[string]any{"required": []string{c.Require}},
			}
		}
		w.scalar(conds)
	}
	if s.OneKey {
		key("minProperties")
		w.scalar(1)
		key("maxProperties")
		w.scalar(1)
	}
	w.buf.WriteByte('}')
}

// Markdown writes the reference: the title and description, then one
// section per key of the root (the keys that hold a single value grouped
// first, under "General"), each listing every key under it with its type,
// default, accepted values and description.
func (s *Schema) Markdown(title string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\n", title)
	if s.Description != "" {
		b.WriteString(markdownText(s.Description) + "\n\n")
	}
	var general, sections []Prop
	for _, p := range s.Props {
		if p.Schema.Props != nil || p.Schema.Items != nil && p.Schema.Items.Props != nil {
			sections = append(sections, p)
		} else {
			general = append(general, p)
		}
	}
	b.WriteString("Sections: [General](#general)")
	for _, p := range sections {
		fmt.Fprintf(&b, " · [`%s`](#%s)", p.Key, p.Key)
	}
	b.WriteString("\n\n## General\n\n")
	for _, p := range general {
		entry(&b, p.Key, p.Schema, s)
	}
	for _, p := range sections {
		fmt.Fprintf(&b, "## %s\n\n", p.Key)
		walk(&b, p.Key, p.Schema, s)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// walk writes the entry of key at, a key of the mapping parent, and of
// every key under it.
func walk(b *bytes.Buffer, at string, s, parent *Schema) {
	entry(b, at, s, parent)
	switch {
	case s.Props != nil:
		for _, p := range s.Props {
			walk(b, at+"."+p.Key, p.Schema, s)
		}
	case s.Items != nil && s.Items.Props != nil:
		for _, p := range s.Items.Props {
			walk(b, at+"[]."+p.Key, p.Schema, s.Items)
		}
	case s.Values != nil && s.Values.Props != nil:
		for _, p := range s.Values.Props {
			walk(b, at+".<name>."+p.Key, p.Schema, s.Values)
		}
	}
}

// entry writes one key: heading, facts, description.
func entry(b *bytes.Buffer, at string, s, parent *Schema) {
	fmt.Fprintf(b, "### `%s`\n\n", at)
	facts := []string{s.Kind}
	key := at[strings.LastIndexAny(at, ".")+1:]
	if contains(parent.Required, key) {
		facts = append(facts, "required")
	}
	for _, c := range parent.When {
		if c.Require == key {
			vals := make([]string, len(c.Values))
			for i, v := range c.Values {
				vals[i] = inline(v)
			}
			facts = append(facts, "required when "+c.Key+" is "+strings.Join(vals, " or "))
		}
	}
	if s.Default != nil {
		facts = append(facts, "default "+inline(s.Default))
	}
	enum := s.Enum
	if s.Items != nil && s.Items.Enum != nil {
		enum = s.Items.Enum
	}
	if enum != nil {
		vals := make([]string, len(enum))
		for i, v := range enum {
			vals[i] = inline(v)
		}
		facts = append(facts, "one of "+strings.Join(vals, ", "))
	}
	if s.Pattern != "" && s.Kind == "string" {
		facts = append(facts, "matching "+inline(s.Pattern))
	}
	if len(s.OneOf) > 0 {
		facts = append(facts, "exactly one of "+strings.Join(s.OneOf, ", "))
	}
	if s.Items != nil && len(s.Items.OneOf) > 0 {
		facts = append(facts, "each with exactly one of "+strings.Join(s.Items.OneOf, ", "))
	}
	if s.Items != nil && s.Items.OneKey {
		facts = append(facts, "each item has exactly one key")
	}
	fmt.Fprintf(b, "*%s*\n\n", strings.Join(facts, " · "))
	if s.Description != "" {
		b.WriteString(markdownText(s.Description) + "\n\n")
	}
}

// inline writes a value as YAML would show it, in backticks.
func inline(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	default:
		j, _ := json.Marshal(v)
		s = string(j)
	}
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// markdownText turns a description into Markdown: code blocks (lines
// indented by a tab) fenced.
func markdownText(text string) string {
	var out []string
	code := false
	for _, line := range strings.Split(text, "\n") {
		isCode := strings.HasPrefix(line, "\t")
		switch {
		case isCode && !code:
			out = append(out, "```")
			code = true
		case !isCode && code && line != "":
			out = append(out, "```", "")
			code = false
		}
		if code && line == "" {
			continue
		}
		out = append(out, strings.TrimPrefix(line, "\t"))
	}
	if code {
		out = append(out, "```")
	}
	return strings.Join(out, "\n")
}
