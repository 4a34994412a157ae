package ceconform

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// checkAttr checks the canonical string value of attribute name; where
// names its place ("time", "header ce-time").
func checkAttr(c *checker, where, name, s string) {
	checkString(c, where, s)
	switch name {
	case "specversion":
		if s != "1.0" {
			c.errorf("%s: %q, want \"1.0\"", where, s)
		}
	case "id", "type", "subject":
		if s == "" {
			c.errorf("%s: must be a non-empty string", where)
		}
	case "source":
		if s == "" {
			c.errorf("%s: must be a non-empty URI-reference", where)
		} else if err := checkURIRef(s); err != nil {
			c.errorf("%s: %q is not a URI-reference (RFC 3986): %v", where, s, err)
		}
	case "dataschema":
		if err := checkAbsURI(s); err != nil {
			c.errorf("%s: %q is not an absolute URI (RFC 3986 4.3): %v", where, s, err)
		}
	case "time":
		if err := checkRFC3339(s); err != nil {
			c.errorf("%s: %q is not RFC 3339: %v", where, s, err)
		}
	case "datacontenttype":
		if err := checkMediaType(s); err != nil {
			c.errorf("%s: %q is not a media type (RFC 2046): %v", where, s, err)
		}
	}
}

// checkMediaType checks "type/subtype" with optional parameters.
func checkMediaType(s string) error {
	mt, _, err := mime.ParseMediaType(s)
	if err != nil {
		return err
	}
	if typ, sub, ok := strings.Cut(mt, "/"); !ok || typ == "" || sub == "" {
		return errors.New("want type/subtype")
	}
	return nil
}

// checkString applies the String type's rules (spec.md "Type System"): no
// control characters U+0000-U+001F and U+007F-U+009F, no noncharacters.
// (Unpaired surrogates are caught by jsonString and, in headers, by the
// UTF-8 check.)
func checkString(c *checker, where, s string) {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				c.errorf("%s: invalid UTF-8 at byte %d", where, i)
				return
			}
		case r <= 0x1f || r >= 0x7f && r <= 0x9f:
			c.errorf("%s: control character %U at byte %d is not allowed in a String", where, r, i)
			return
		case r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe:
			c.errorf("%s: noncharacter %U at byte %d is not allowed in a String", where, r, i)
			return
		}
	}
}

// utf8Valid reports whether b is UTF-8, as JSON text must be (RFC 8259).
func utf8Valid(c *checker, where string, b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			c.errorf("%s: invalid UTF-8 at byte %d (JSON MUST be UTF-8)", where, i)
			break
		}
		i += size
	}
	return false
}

// jsonString decodes a JSON string, rejecting other types and escaped
// unpaired surrogates (encoding/json would turn them into U+FFFD).
func jsonString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("must be a JSON string, got %s", clip(string(raw)))
	}
	for i := 1; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' || i+4 >= len(raw) {
			continue
		}
		u, _ := strconv.ParseUint(string(raw[i+1:i+5]), 16, 32)
		i += 4
		switch {
		case u >= 0xdc00 && u <= 0xdfff:
			return "", fmt.Errorf("unpaired surrogate \\u%04X", u)
		case u >= 0xd800 && u <= 0xdbff:
			lo := uint64(0)
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				lo, _ = strconv.ParseUint(string(raw[i+3:i+7]), 16, 32)
			}
			if lo < 0xdc00 || lo > 0xdfff {
				return "", fmt.Errorf("unpaired surrogate \\u%04X", u)
			}
			i += 6
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// intRE is the JSON form of an Integer: "only the integer component
// optionally prefixed with a minus sign" (json-format 2.2).
var intRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// extensionValue returns the canonical string of an extension attribute's
// JSON value: a string, a boolean or an Integer.
func extensionValue(raw json.RawMessage) (string, error) {
	switch s := string(raw); {
	case raw[0] == '"':
		return jsonString(raw)
	case s == "true" || s == "false":
		return s, nil
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		if !intRE.MatchString(s) {
			return "", fmt.Errorf("number %s is not an Integer (only an integer component is permitted)", clip(s))
		}
		if n, err := strconv.ParseInt(s, 10, 32); err != nil || n < -1<<31 || n > 1<<31-1 {
			return "", fmt.Errorf("Integer %s out of the signed 32-bit range", clip(s))
		}
		return s, nil
	default:
		return "", fmt.Errorf("must be a string, boolean or integer, got %s", clip(s))
	}
}

// decodeBase64 decodes standard padded base64 (RFC 4648 section 4),
// refusing the line breaks encoding/base64 would skip.
func decodeBase64(s string) ([]byte, error) {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("line break at byte %d", i)
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// rfc3339RE is RFC 3339 section 5.6 date-time ("T" and "Z" may be lower
// case, section 5.6 NOTE).
var rfc3339RE = regexp.MustCompile(`^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|([+-])([0-9]{2}):([0-9]{2}))$`)

// checkRFC3339 checks a Timestamp's string encoding.
func checkRFC3339(s string) error {
	m := rfc3339RE.FindStringSubmatch(s)
	if m == nil {
		return errors.New("want YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)")
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	year, month, day := n(1), n(2), n(3)
	switch {
	case month < 1 || month > 12:
		return fmt.Errorf("month %02d out of range", month)
	case day < 1 || day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day():
		return fmt.Errorf("day %02d out of range for %04d-%02d", day, year, month)
	case n(4) > 23:
		return fmt.Errorf("hour %s out of range", m[4])
	case n(5) > 59:
		return fmt.Errorf("minute %s out of range", m[5])
	case n(6) > 60: // 60: leap second
		return fmt.Errorf("second %s out of range", m[6])
	case m[9] != "" && n(10) > 23:
		return fmt.Errorf("offset hour %s out of range", m[10])
	case m[9] != "" && n(11) > 59:
		return fmt.Errorf("offset minute %s out of range", m[11])
	}
	return nil
}

// parseTime parses a valid Timestamp (leap seconds folded into :59).
func parseTime(s string) (time.Time, bool) {
	if checkRFC3339(s) != nil {
		return time.Time{}, false
	}
	s = strings.ToUpper(s)
	if s[17:19] == "60" {
		s = s[:17] + "59" + s[19:]
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// sameInstant reports whether two Timestamps name the same instant.
func sameInstant(a, b string) bool {
	ta, ok1 := parseTime(a)
	tb, ok2 := parseTime(b)
	return ok1 && ok2 && ta.Equal(tb)
}

// checkURIRef checks an RFC 3986 URI-reference (section 4.1).
func checkURIRef(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Errorf("'%%' at byte %d not followed by two hex digits", i)
			}
			i += 2
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~!$&'()*+,;=:@/?#[]", c) >= 0:
		case c >= 0x80:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Errorf("character %q at byte %d must be percent-encoded", r, i)
		default:
			return fmt.Errorf("character %q at byte %d must be percent-encoded", c, i)
		}
	}
	if strings.Count(s, "#") > 1 {
		return errors.New("more than one '#'")
	}
	rest := s
	if i := strings.IndexAny(s, ":/?#"); i >= 0 && s[i] == ':' {
		if !validScheme(s[:i]) {
			return fmt.Errorf("%q is not a scheme, and a relative reference's first segment cannot contain ':'", s[:i])
		}
		rest = s[i+1:]
	}
	// '[' and ']' only delimit an IP literal in the authority.
	if strings.HasPrefix(rest, "//") {
		auth := rest[2:]
		end := strings.IndexAny(auth, "/?#")
		if end < 0 {
			end = len(auth)
		}
		rest = auth[end:]
	}
	if strings.ContainsAny(rest, "[]") {
		return errors.New("'[' or ']' outside an IP literal host")
	}
	if _, err := url.Parse(s); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	return nil
}

// checkAbsURI checks an RFC 3986 absolute-URI (section 4.3): a scheme and
// no fragment.
func checkAbsURI(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if err := checkURIRef(s); err != nil {
		return err
	}
	if i := strings.IndexAny(s, ":/?#"); i < 0 || s[i] != ':' {
		return errors.New("no scheme")
	}
	if strings.Contains(s, "#") {
		return errors.New("an absolute URI has no fragment")
	}
	return nil
}

func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// decodeHeaderValue decodes a binary-mode header value as binding
// 3.1.3.2 says: unquote an RFC 7230 quoted-string (accepted, but a sender
// SHOULD NOT produce one), then one round of percent-decoding. errs lists
// MUST violations of the sender's encoding: space, '"', '%' and anything
// outside printable ASCII must be percent-encoded; decoded bytes must be
// UTF-8.
func decodeHeaderValue(raw string) (val string, errs, warns []string) {
	v := raw
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		warns = append(warns, "quoted-string value (SHOULD NOT be further encoded than percent-encoding)")
		unq, err := unquoteHeader(v[1 : len(v)-1])
		if err != "" {
			return "", append(errs, err), warns
		}
		v = unq
	}
	var p pctScan
	out := p.decode(v)
	list := func(what string, at []string) {
		if len(at) > 0 {
			if len(at) > 3 {
				at = append(at[:3], "…")
			}
			errs = append(errs, what+" "+strings.Join(at, ", "))
		}
	}
	list("not percent-encoded: space at byte", p.space)
	list("not percent-encoded: '\"' at byte", p.quote)
	list("not percent-encoded: non-ASCII", p.nonASCII)
	list("not percent-encoded: control character", p.ctl)
	list("'%' not followed by two hex digits (a literal '%' must be %25) at byte", p.badPct)
	if len(errs) == 0 && !utf8.Valid(out) {
		errs = append(errs, "percent-encoded bytes are not valid UTF-8 (MUST be rejected)")
	}
	if len(p.lower) > 0 {
		warns = append(warns, fmt.Sprintf("lower-case percent-encoding %s (SHOULD be upper-case)", p.lower[0]))
	}
	if len(p.needless) > 0 {
		warns = append(warns, fmt.Sprintf("printable ASCII percent-encoded: %s (SHOULD NOT be)", strings.Join(p.needless, " ")))
	}
	return string(out), errs, warns
}

// unquoteHeader undoes a quoted-string's backslash escapes; err describes
// a malformed one.
func unquoteHeader(inner string) (string, string) {
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\' && i+1 < len(inner):
			i++
			b.WriteByte(inner[i])
		case c == '\\' || c == '"':
			return "", fmt.Sprintf("malformed quoted-string: bare %q at byte %d", c, i+1)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// pctScan percent-decodes a header value and notes, by byte offset, what
// the HTTP binding says must (or should not) have been encoded.
type pctScan struct {
	space, quote, ctl, nonASCII, badPct, lower, needless []string
}

func (p *pctScan) decode(v string) []byte {
	var out []byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%':
			if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
				p.badPct = append(p.badPct, strconv.Itoa(i))
				out = append(out, c)
				continue
			}
			d := unhex(v[i+1])<<4 | unhex(v[i+2])
			if v[i+1] >= 'a' || v[i+2] >= 'a' {
				p.lower = append(p.lower, v[i:i+3])
			}
			if d > 0x20 && d < 0x7f && d != '"' && d != '%' {
				p.needless = append(p.needless, v[i:i+3])
			}
			out = append(out, d)
			i += 2
			continue
		case c == ' ':
			p.space = append(p.space, strconv.Itoa(i))
		case c == '"':
			p.quote = append(p.quote, strconv.Itoa(i))
		case c >= 0x80:
			r, size := utf8.DecodeRuneInString(v[i:])
			if r == utf8.RuneError {
				p.nonASCII = append(p.nonASCII, fmt.Sprintf("byte 0x%02X at %d", c, i))
			} else {
				p.nonASCII = append(p.nonASCII, fmt.Sprintf("%q at byte %d", r, i))
			}
			out = append(out, v[i:i+size]...)
			i += size - 1
			continue
		case c < 0x20 || c == 0x7f:
			p.ctl = append(p.ctl, fmt.Sprintf("0x%02X at byte %d", c, i))
		}
		out = append(out, c)
	}
	return out
}

// DecodeHeaderValue decodes a binary-mode ce- header value as the HTTP
// binding says (unquote a quoted-string, then one round of
// percent-decoding). It returns an error when the value is not correctly
// encoded; Validate reports the details.
func DecodeHeaderValue(v string) (string, error) {
	s, errs, _ := decodeHeaderValue(v)
	if len(errs) > 0 {
		return v, errors.New(strings.Join(errs, "; "))
	}
	return s, nil
}

// DecodeHeaders replaces every ce- header value in h that decodes cleanly
// with its decoded value, so that a decoder which does not percent-decode
// (sdk-go v2.16.2) sees the attribute values. Other values stay as they
// are.
func DecodeHeaders(h http.Header) {
	for k, vals := range h {
		if !isCEHeader(k) {
			continue
		}
		for i, v := range vals {
			if d, err := DecodeHeaderValue(v); err == nil {
				vals[i] = d
			}
		}
	}
}

// SameEvent compares a received event with the record that was sent (an
// event in the JSON format, which must itself be valid) and describes the
// first difference: attributes by canonical string (times as instants),
// data by bytes (JSON compacted). A binary-mode event gets the
// datacontenttype application/json a JSON-format record without one implies.
func SameEvent(got Event, record []byte) error {
	want, _, err := ValidateStructured(record)
	if err != nil {
		return fmt.Errorf("sent record is invalid: %w", err)
	}
	if _, ok := want.Attrs["datacontenttype"]; !ok && got.Mode == ModeBinary && want.HasData && !want.DataBase64 {
		want.Attrs["datacontenttype"] = "application/json"
	}
	keys := map[string]bool{}
	for k := range got.Attrs {
		keys[k] = true
	}
	for k := range want.Attrs {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		g, gok := got.Attrs[k]
		w, wok := want.Attrs[k]
		switch {
		case gok != wok:
			return fmt.Errorf("attribute %s: present %v, want present %v (%q vs %q)", k, gok, wok, g, w)
		case g == w, k == "time" && sameInstant(g, w):
		default:
			return fmt.Errorf("attribute %s = %q, want %q", k, g, w)
		}
	}
	if got.HasData != want.HasData || string(got.Data) != string(want.Data) {
		return fmt.Errorf("data %q, want %q", clip(string(got.Data)), clip(string(want.Data)))
	}
	if got.Mode != ModeBinary && got.DataBase64 != want.DataBase64 {
		return fmt.Errorf("data_base64 %v, want %v", got.DataBase64, want.DataBase64)
	}
	return nil
}
