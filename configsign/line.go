package configsign

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Header is the HTTP header that carries a detached signature line with a
// pushed or pulled document.
const Header = "Edgegate-Signature"

// linePrefix starts every signature line, at the line's first column.
const linePrefix = "# edgegate-signature:"

// Line is a parsed signature line:
//
//	# edgegate-signature: v1 version=<int64> key=<keyid> sig=<base64url>
type Line struct {
	Version int64  // > 0
	KeyID   string // 16 hex digits
	Sig     []byte // ed25519 signature
}

// String is the line as it is written (no line break).
func (l Line) String() string {
	return fmt.Sprintf("%s v1 version=%d key=%s sig=%s", linePrefix, l.Version, l.KeyID, base64.RawURLEncoding.EncodeToString(l.Sig))
}

// LineError is a malformed signature line, or one where it must not be.
// Line is its 1-based number in the document (1 for a detached signature).
type LineError struct {
	Line int
	Msg  string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("signature line %d: %s", e.Line, e.Msg)
}

// ParseLine parses one signature line; a trailing line break (LF or CRLF)
// and trailing blanks are ignored.
func ParseLine(s string) (Line, error) {
	l, msg := parseLine(s)
	if msg != "" {
		return Line{}, &LineError{Line: 1, Msg: msg}
	}
	return l, nil
}

// parseLine returns the line or what is wrong with it.
func parseLine(s string) (Line, string) {
	s = strings.TrimRight(s, " \t\r\n")
	rest, ok := strings.CutPrefix(s, linePrefix)
	if !ok {
		return Line{}, fmt.Sprintf("does not start with %q", linePrefix)
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return Line{}, "empty"
	}
	if f[0] != "v1" {
		return Line{}, fmt.Sprintf("format %q is not supported (want v1)", f[0])
	}
	if len(f) != 4 {
		return Line{}, fmt.Sprintf("want 3 fields after v1 (version=, key=, sig=), got %d", len(f)-1)
	}
	var l Line
	val := func(i int, key string) (string, bool) {
		return strings.CutPrefix(f[i], key+"=")
	}
	v, ok := val(1, "version")
	if !ok {
		return Line{}, fmt.Sprintf("field 2 is %q, want version=<int>", f[1])
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || v != strconv.FormatInt(n, 10) {
		return Line{}, fmt.Sprintf("version %q: want an integer > 0", v)
	}
	l.Version = n
	if l.KeyID, ok = val(2, "key"); !ok {
		return Line{}, fmt.Sprintf("field 3 is %q, want key=<key id>", f[2])
	}
	if b, err := hex.DecodeString(l.KeyID); err != nil || len(b) != 8 || l.KeyID != strings.ToLower(l.KeyID) {
		return Line{}, fmt.Sprintf("key %q: want 16 lower-case hex digits", l.KeyID)
	}
	sig, ok := val(3, "sig")
	if !ok {
		return Line{}, fmt.Sprintf("field 4 is %q, want sig=<base64url>", f[3])
	}
	if l.Sig, err = base64.RawURLEncoding.Strict().DecodeString(sig); err != nil {
		return Line{}, fmt.Sprintf("sig: bad base64url: %v", err)
	}
	if len(l.Sig) != 64 {
		return Line{}, fmt.Sprintf("sig: %d bytes, want 64", len(l.Sig))
	}
	return l, ""
}

// Split separates a document from its embedded signature line, which must
// be its last line (followed by at most a line break). It returns the body
// (the bytes before that line) and the line, or the whole document and a
// nil line when it has none. A signature line anywhere else (a second one,
// or one followed by more text) is a *LineError, and so is a malformed one.
func Split(doc []byte) (body []byte, line *Line, err error) {
	start, n := 0, 1
	for start < len(doc) {
		end := bytes.IndexByte(doc[start:], '\n')
		next := len(doc)
		if end >= 0 {
			next = start + end + 1
		}
		if bytes.HasPrefix(doc[start:next], []byte(linePrefix)) {
			if next < len(doc) {
				return nil, nil, &LineError{Line: n, Msg: "a signature must be the last line of the document"}
			}
			l, msg := parseLine(string(doc[start:next]))
			if msg != "" {
				return nil, nil, &LineError{Line: n, Msg: msg}
			}
			return doc[:start], &l, nil
		}
		start = next
		n++
	}
	return doc, nil, nil
}

// embed returns body, which ends with a line break (terminated), with line
// appended as its last line.
func embed(body []byte, line Line) []byte {
	out := make([]byte, 0, len(body)+len(linePrefix)+140)
	out = append(out, body...)
	out = append(out, line.String()...)
	return append(out, lineBreak(body)...)
}

// terminated returns body ending with a line break (an empty body stays
// empty).
func terminated(body []byte) []byte {
	if len(body) == 0 || body[len(body)-1] == '\n' {
		return body
	}
	return append(append([]byte(nil), body...), lineBreak(body)...)
}

// lineBreak is the body's first line break, CRLF or LF (LF without one).
func lineBreak(body []byte) string {
	if i := bytes.IndexByte(body, '\n'); i > 0 && body[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}
