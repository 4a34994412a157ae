package rules

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// errJSON is decodeJSON's only error: callers fall back to the raw bytes,
// so the position and kind of a problem do not matter.
var errJSON = errors.New("rules: not one JSON value, or a number out of range")

// maxJSONDepth is encoding/json's nesting limit, kept so that the same
// documents decode.
const maxJSONDepth = 10000

// decodeJSON decodes one JSON value into what json.Unmarshal puts in an
// `any` — map[string]any, []any, string, float64, bool, nil — with the same
// results and the same refusals (FuzzDecodeJSON compares the two), in one
// pass and without reflection: it runs on every event with JSON data that
// meets rules, where encoding/json cost a third of the per-event CPU and
// most of its allocations (issue 13). Invalid UTF-8 and unpaired
// surrogates become U+FFFD; duplicate keys keep the last value; a number
// out of float64's range is an error, as for json.Unmarshal.
func decodeJSON(b []byte) (any, error) {
	d := jsonDecoder{b: b}
	v, ok := d.value(0)
	if !ok {
		return nil, errJSON
	}
	d.space()
	if d.i != len(d.b) {
		return nil, errJSON
	}
	return v, nil
}

type jsonDecoder struct {
	b []byte
	i int
}

func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(depth int) (any, bool) {
	d.space()
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		s, ok := d.str()
		return s, ok
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, false
}

func (d *jsonDecoder) literal(word string) bool {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return false
	}
	d.i += len(word)
	return true
}

func (d *jsonDecoder) object(depth int) (any, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	d.i++ // {
	m := make(map[string]any)
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v
		if more, ok := d.after('}'); !more {
			return m, ok
		}
	}
}

func (d *jsonDecoder) array(depth int) (any, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	d.i++ // [
	a := []any{}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if more, ok := d.after(']'); !more {
			return a, ok
		}
	}
}

// after reads what follows a member or element: ',' (more: another one
// follows) or end (ok: the object or array is complete); anything else is
// an error.
func (d *jsonDecoder) after(end byte) (more, ok bool) {
	d.space()
	if d.i >= len(d.b) {
		return false, false
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return true, true
	case end:
		d.i++
		return false, true
	}
	return false, false
}

// number reads a number in JSON's grammar as a float64.
func (d *jsonDecoder) number() (any, bool) {
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return nil, false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

// str reads a string at d.i (which is '"'), as encoding/json unquotes it.
func (d *jsonDecoder) str() (string, bool) {
	d.i++ // "
	start := d.i
	// The common case: no escapes, ASCII or valid UTF-8.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := d.b[start:d.i]
			d.i++
			if utf8.Valid(s) {
				return string(s), true
			}
			return d.slowStr(start)
		}
		if c == '\\' {
			return d.slowStr(start)
		}
		if c < 0x20 {
			return "", false
		}
		d.i++
	}
	return "", false
}

// slowStr decodes the string that starts at start (after its quote) with
// escapes and invalid UTF-8, leaving d.i after its closing quote.
func (d *jsonDecoder) slowStr(start int) (string, bool) {
	d.i = start
	out := make([]byte, 0, 16)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), true
		case c < 0x20:
			return "", false
		case c == '\\':
			d.i++
			if d.i >= len(d.b) {
				return "", false
			}
			e := d.b[d.i]
			d.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", false
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by an escaped low one is one
					// rune; anything else is U+FFFD and the next escape is
					// read on its own.
					r2 := utf8.RuneError
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						if n, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, n); dec != utf8.RuneError {
								r2 = dec
							} else {
								d.i = save
							}
						} else {
							return "", false
						}
					}
					r = r2
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", false
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			d.i += size
			out = utf8.AppendRune(out, r) // invalid bytes become U+FFFD
		}
	}
	return "", false
}

// hex4 reads the 4 hex digits of a \u escape.
func (d *jsonDecoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}
