package cloudevent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is one CloudEvent (specversion 1.0) as edgegate keeps it: the
// record the buffer stores (Encode, Decode), rules read (rules.FromRecord)
// and senders write (AppendJSON). The zero value is an empty event; a
// valid one has ID, Source and Type (see Validate).
type Event struct {
	ID              string
	Source          string // URI-reference
	Type            string
	Subject         string    // "": absent
	Time            time.Time // zero: absent; written in UTC
	DataContentType string    // "": absent
	DataSchema      string    // absolute URI; "": absent

	// Extensions are the extension attributes in the order they were set;
	// names are unique (use SetExtension).
	Extensions []Extension

	// Data is the event data; empty means none. When DataBase64 is false
	// it holds one JSON value (the JSON format's data member), which needs
	// a JSON datacontenttype or none (see JSONContentType); when true it
	// holds raw bytes (data_base64 in the JSON format).
	Data       []byte
	DataBase64 bool

	// Replayed marks an event that waited out an outage. It is not stored
	// by Encode; AppendJSON writes it as the extension replayed=true, in
	// place of any stored extension of that name.
	Replayed bool
}

// Extension is one extension attribute.
type Extension struct {
	Name  string
	Value Value
}

// Kind is the CloudEvents type of an extension value.
type Kind uint8

// The kinds an extension value may have. edgegate writes only these three
// of the spec's types; others (URI, Timestamp, Binary) travel as strings.
const (
	KindString Kind = iota + 1
	KindBool
	KindInteger
)

// Value is an extension attribute value: a String, Boolean or Integer
// (32-bit). The zero Value is invalid.
type Value struct {
	kind Kind
	s    string
	n    int32 // KindInteger; KindBool: 0 or 1
}

// String returns a String value.
func String(s string) Value { return Value{kind: KindString, s: s} }

// Bool returns a Boolean value.
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.n = 1
	}
	return v
}

// Integer returns an Integer value.
func Integer(n int32) Value { return Value{kind: KindInteger, n: n} }

// Kind returns the value's kind (0 for the zero Value).
func (v Value) Kind() Kind { return v.kind }

// Str returns a String value's text ("" for other kinds).
func (v Value) Str() string { return v.s }

// Bool returns a Boolean value (false for other kinds).
func (v Value) Bool() bool { return v.kind == KindBool && v.n != 0 }

// Int returns an Integer value (0 for other kinds).
func (v Value) Int() int32 {
	if v.kind != KindInteger {
		return 0
	}
	return v.n
}

// Any returns the value as a string, bool or int32 (nil for the zero
// Value).
func (v Value) Any() any {
	switch v.kind {
	case KindString:
		return v.s
	case KindBool:
		return v.n != 0
	case KindInteger:
		return v.n
	}
	return nil
}

// String returns the canonical string form of the value (spec.md "Type
// System"): the text of a String, "true"/"false", decimal digits.
func (v Value) String() string {
	switch v.kind {
	case KindString:
		return v.s
	case KindBool:
		return strconv.FormatBool(v.n != 0)
	case KindInteger:
		return strconv.FormatInt(int64(v.n), 10)
	}
	return ""
}

// Extension returns the value of the named extension.
func (e *Event) Extension(name string) (Value, bool) {
	for i := range e.Extensions {
		if e.Extensions[i].Name == name {
			return e.Extensions[i].Value, true
		}
	}
	return Value{}, false
}

// SetExtension sets the named extension, replacing the value of one of the
// same name in place or appending it. The caller chooses a valid name (see
// ValidExtensionName and Reserved); Validate reports a bad one.
func (e *Event) SetExtension(name string, v Value) {
	for i := range e.Extensions {
		if e.Extensions[i].Name == name {
			e.Extensions[i].Value = v
			return
		}
	}
	e.Extensions = append(e.Extensions, Extension{Name: name, Value: v})
}

// DeleteExtension removes the named extension, keeping the order of the
// others.
func (e *Event) DeleteExtension(name string) {
	for i := range e.Extensions {
		if e.Extensions[i].Name == name {
			e.Extensions = append(e.Extensions[:i], e.Extensions[i+1:]...)
			return
		}
	}
}

// Validate reports what makes e something a strict CloudEvents receiver
// refuses: a missing id, source or type, an empty subject given as
// present, a bad extension name or value, JSON data under a content type
// that is not JSON. It parses no URI, and a media type only for JSON data
// under an uncommon content type; it does not check that JSON data is
// valid JSON (Map, the decoders and rules ensure that).
func (e *Event) Validate() error {
	switch {
	case strings.TrimSpace(e.ID) == "":
		return errors.New("id: must be a non-empty string")
	case strings.TrimSpace(e.Source) == "":
		return errors.New("source: must be a non-empty URI-reference")
	case strings.TrimSpace(e.Type) == "":
		return errors.New("type: must be a non-empty string")
	}
	for i := range e.Extensions {
		x := &e.Extensions[i]
		if !ValidExtensionName(x.Name) || Reserved(x.Name) {
			return fmt.Errorf("extension %q: not a valid extension name", x.Name)
		}
		if x.Value.kind < KindString || x.Value.kind > KindInteger {
			return fmt.Errorf("extension %s: no value", x.Name)
		}
		for j := range i {
			if e.Extensions[j].Name == x.Name {
				return fmt.Errorf("extension %s: set twice", x.Name)
			}
		}
	}
	if len(e.Data) > 0 && !e.DataBase64 && !JSONContentType(e.DataContentType) {
		return fmt.Errorf("data: a JSON value under datacontenttype %q, which is not JSON", e.DataContentType)
	}
	return nil
}
