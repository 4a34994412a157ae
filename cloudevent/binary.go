package cloudevent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The buffer form of an event (Encode, Decode), version 1:
//
//	0xCE 0x01                  magic, version
//	flags                      1: time present, 2: data is binary (DataBase64)
//	6 × uvarint                lengths of id, source, type, subject,
//	                           datacontenttype, dataschema
//	[varint uvarint]           time: Unix seconds, nanoseconds (flag 1)
//	uvarint                    number of extensions, then for each:
//	  uvarint kind [value]     name length; kind 1 String (uvarint length
//	                           follows), 2 Boolean (one byte 0/1 follows),
//	                           3 Integer (varint follows)
//	strings                    the six attributes, then each extension's
//	                           name and String value, back to back
//	data                       every remaining byte
//
// Strings come after the header so Decode makes them with one allocation.
// Replayed is not stored. A record whose first byte is not the magic is a
// CloudEvent in the JSON format, as edgegate 2026-12 and earlier stored it.
const (
	magic   = 0xCE
	version = 1

	flagTime   = 1
	flagBinary = 2
)

// Encode returns the buffer form of e (Replayed is not stored). It does
// not validate e.
func Encode(e *Event) []byte {
	n := 3 + 6*binary.MaxVarintLen32 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen32 +
		len(e.ID) + len(e.Source) + len(e.Type) + len(e.Subject) + len(e.DataContentType) + len(e.DataSchema) + len(e.Data)
	for i := range e.Extensions {
		n += 2*binary.MaxVarintLen32 + 1 + len(e.Extensions[i].Name) + len(e.Extensions[i].Value.s)
	}
	return AppendEncode(make([]byte, 0, n), e)
}

// AppendEncode appends the buffer form of e to dst.
func AppendEncode(dst []byte, e *Event) []byte {
	var flags byte
	if !e.Time.IsZero() {
		flags |= flagTime
	}
	if e.DataBase64 {
		flags |= flagBinary
	}
	dst = append(dst, magic, version, flags)
	for _, s := range [...]string{e.ID, e.Source, e.Type, e.Subject, e.DataContentType, e.DataSchema} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
	}
	if flags&flagTime != 0 {
		dst = binary.AppendVarint(dst, e.Time.Unix())
		dst = binary.AppendUvarint(dst, uint64(e.Time.Nanosecond()))
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Extensions)))
	for i := range e.Extensions {
		x := &e.Extensions[i]
		dst = binary.AppendUvarint(dst, uint64(len(x.Name)))
		switch x.Value.kind {
		case KindBool:
			dst = append(dst, byte(KindBool), byte(x.Value.n))
		case KindInteger:
			dst = append(dst, byte(KindInteger))
			dst = binary.AppendVarint(dst, int64(x.Value.n))
		default: // the zero Value is stored as an empty String
			dst = append(dst, byte(KindString))
			dst = binary.AppendUvarint(dst, uint64(len(x.Value.s)))
		}
	}
	dst = append(dst, e.ID...)
	dst = append(dst, e.Source...)
	dst = append(dst, e.Type...)
	dst = append(dst, e.Subject...)
	dst = append(dst, e.DataContentType...)
	dst = append(dst, e.DataSchema...)
	for i := range e.Extensions {
		dst = append(dst, e.Extensions[i].Name...)
		if e.Extensions[i].Value.kind == KindString || e.Extensions[i].Value.kind == 0 {
			dst = append(dst, e.Extensions[i].Value.s...)
		}
	}
	return append(dst, e.Data...)
}

// ErrCorrupt is wrapped by Decode's errors for bytes that are neither
// form of a record.
var ErrCorrupt = errors.New("not an event record")

// Decode fills e from a record: the buffer form Encode writes, or a
// CloudEvent in the JSON format (what edgegate stored before the buffer
// form existed, and what `rules test` reads). e.Data shares b's bytes for
// the buffer form; the rest is copied. e's Extensions slice is reused.
// Decode does not validate the event (see Validate); it returns an error
// wrapping ErrCorrupt for bytes it cannot read, and never panics.
func Decode(b []byte, e *Event) error {
	if len(b) == 0 || b[0] != magic {
		return decodeJSON(b, e)
	}
	if len(b) < 2 || b[1] != version {
		if len(b) < 2 {
			return fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		return fmt.Errorf("%w: format version %d is not known to this edgegate", ErrCorrupt, b[1])
	}
	flags, strs, ok := checkHeader(b)
	if !ok {
		return fmt.Errorf("%w: bad buffer record header", ErrCorrupt)
	}
	cutHeader(b, flags, strs, e)
	return nil
}

// checkHeader is Decode's first pass: it checks the header of the buffer
// form and returns where the strings that follow it start and end.
func checkHeader(b []byte) (flags byte, strs span, ok bool) {
	r := reader{b: b, p: 2}
	total := 0
	flags = r.byte()
	for range 6 {
		total = r.add(total, r.length())
	}
	if flags&flagTime != 0 {
		r.varint()
		if ns := r.uvarint(); ns >= 1e9 {
			r.fail()
		}
	}
	n := r.length()
	if n > len(b) { // each extension takes at least two bytes
		r.fail()
	}
	for i := 0; i < n && !r.bad; i++ {
		total = r.add(total, r.length())
		switch Kind(r.byte()) {
		case KindString:
			total = r.add(total, r.length())
		case KindBool:
			if r.byte() > 1 {
				r.fail()
			}
		case KindInteger:
			if v := r.varint(); v < math.MinInt32 || v > math.MaxInt32 {
				r.fail()
			}
		default:
			r.fail()
		}
	}
	ok = !r.bad && flags&^(flagTime|flagBinary) == 0 && total <= len(b)-r.p
	return flags, span{r.p, r.p + total}, ok
}

// span is b[lo:hi].
type span struct{ lo, hi int }

// cutHeader is Decode's second pass over a header checkHeader accepted: it
// cuts the attributes and extensions from one string (b[strs.lo:strs.hi])
// and points Data at the rest of b.
func cutHeader(b []byte, flags byte, strs span, e *Event) {
	r := reader{b: b, p: 3}
	var lens [6]int
	for i := range lens {
		lens[i] = r.length()
	}
	var timeSec int64
	var timeNS uint64
	if flags&flagTime != 0 {
		timeSec, timeNS = r.varint(), r.uvarint()
	}
	n := r.length()
	str, data := string(b[strs.lo:strs.hi]), b[strs.hi:]
	off := 0
	next := func(n int) string { s := str[off : off+n]; off += n; return s }

	*e = Event{Extensions: e.Extensions[:0], DataBase64: flags&flagBinary != 0}
	e.ID, e.Source, e.Type = next(lens[0]), next(lens[1]), next(lens[2])
	e.Subject, e.DataContentType, e.DataSchema = next(lens[3]), next(lens[4]), next(lens[5])
	if flags&flagTime != 0 {
		e.Time = time.Unix(timeSec, int64(timeNS)).UTC()
	}
	if cap(e.Extensions) < n {
		e.Extensions = make([]Extension, 0, n)
	}
	for range n {
		nameLen := r.length()
		var v Value
		switch Kind(r.byte()) {
		case KindString:
			valLen := r.length()
			name := next(nameLen)
			e.Extensions = append(e.Extensions, Extension{Name: name, Value: String(next(valLen))})
			continue
		case KindBool:
			v = Bool(r.byte() == 1)
		case KindInteger:
			v = Integer(int32(r.varint()))
		}
		e.Extensions = append(e.Extensions, Extension{Name: next(nameLen), Value: v})
	}
	if len(data) > 0 {
		e.Data = data
	}
}

// reader reads the header of the buffer form; a read past the end or a
// malformed varint sets bad and returns zero.
type reader struct {
	b   []byte
	p   int
	bad bool
}

func (r *reader) fail() { r.bad = true }

func (r *reader) byte() byte {
	if r.p >= len(r.b) {
		r.bad = true
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[min(r.p, len(r.b)):])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.p += n
	return v
}

// varint reads a zig-zag encoded varint (binary.AppendVarint).
func (r *reader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// add adds a string length to a total, failing (not overflowing) once the
// total exceeds the record.
func (r *reader) add(total, n int) int {
	if total += n; total > len(r.b) {
		r.bad = true
		return len(r.b)
	}
	return total
}

// length reads a uvarint that counts bytes of the record.
func (r *reader) length() int {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		r.bad = true
		return 0
	}
	return int(v)
}
