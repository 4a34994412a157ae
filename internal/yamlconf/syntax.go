package yamlconf

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// syntaxError locates a YAML syntax error. yaml.v3 gives no position but a
// line in its message, and that line is often wrong: for parser errors it
// is the 0-based line of the enclosing construct, so it points one line (or
// more) early. Instead of reading it, the problem is found by parsing
// prefixes of data: the first line, then the first byte of that line, from
// which on the prefix fails with the very same error is where the parser
// met the problem. The error text is compared whole, not read; only the
// message shown to the user has yaml.v3's "yaml: line N: " taken off.
func syntaxError(file string, data []byte, err error) *Error {
	e := &Error{File: file, Msg: syntaxMessage(err.Error())}
	fails := func(n int) bool {
		perr := parseAll(data[:n])
		return perr != nil && perr.Error() == err.Error()
	}
	ends := lineEnds(data)
	// The smallest line count whose prefix fails the same way (the whole
	// file does).
	lo, hi := 0, len(ends)
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(ends[mid]) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if hi == len(ends) {
		return e // not reproducible on a prefix: no position
	}
	start := 0
	if hi > 0 {
		start = ends[hi-1]
	}
	// Then the smallest byte count within that line.
	blo, bhi := start+1, ends[hi]
	for blo < bhi {
		mid := (blo + bhi) / 2
		if fails(mid) {
			bhi = mid
		} else {
			blo = mid + 1
		}
	}
	e.Line = hi + 1
	e.Column = utf8.RuneCount(data[start:bhi-1]) + 1
	e.Path = enclosing(data[:start], e.Column)
	return e
}

// lineEnds returns the offset just past each line (its newline included);
// the last entry is len(data).
func lineEnds(data []byte) []int {
	var ends []int
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// parseAll parses every document of data and returns the first error.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// syntaxMessage is yaml.v3's message without its "yaml: " and "line N: "
// prefixes (the line is computed instead, see syntaxError).
func syntaxMessage(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok && num != "" && strings.Trim(num, "0123456789") == "" {
			msg = text
		}
	}
	return "syntax error: " + msg
}

// enclosing is the path of the innermost collection, in the valid lines
// before a syntax error, that the problem at column col is inside of: the
// last collection of each level that starts left of col. It is the root
// path when those lines do not parse.
func enclosing(before []byte, col int) Path {
	var root yaml.Node
	if yaml.Unmarshal(before, &root) != nil || len(root.Content) == 0 {
		return Path{}
	}
	var p Path
	n := root.Content[0]
	for {
		if len(n.Content) == 0 {
			return p
		}
		last := n.Content[len(n.Content)-1]
		if last.Kind != yaml.MappingNode && last.Kind != yaml.SequenceNode || last.Column >= col {
			return p
		}
		switch n.Kind {
		case yaml.MappingNode:
			p = p.Key(n.Content[len(n.Content)-2].Value)
		case yaml.SequenceNode:
			p = p.Index(len(n.Content) - 1)
		default:
			return p
		}
		n = last
	}
}
