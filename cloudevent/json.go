package cloudevent

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e in the CloudEvents JSON format (structured mode, a
// member of a batch) to dst: specversion, id, source, type, then the
// optional attributes present, data or data_base64, and the extensions in
// their order, with replayed=true when e.Replayed is set. It writes what e
// holds without checking it (see Validate); strings that are not valid
// UTF-8 get U+FFFD, as encoding/json does.
func AppendJSON(dst []byte, e *Event) []byte {
	dst = append(dst, `{"specversion":"1.0","id":`...)
	dst = appendJSONString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendJSONString(dst, e.Subject)
	}
	if e.DataContentType != "" {
		dst = append(dst, `,"datacontenttype":`...)
		dst = appendJSONString(dst, e.DataContentType)
	}
	if e.DataSchema != "" {
		dst = append(dst, `,"dataschema":`...)
		dst = appendJSONString(dst, e.DataSchema)
	}
	if !e.Time.IsZero() {
		dst = append(dst, `,"time":"`...)
		dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	if len(e.Data) > 0 {
		if e.DataBase64 {
			dst = append(dst, `,"data_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, e.Data)
			dst = append(dst, '"')
		} else {
			dst = append(dst, `,"data":`...)
			dst = append(dst, e.Data...)
		}
	}
	for i := range e.Extensions {
		x := &e.Extensions[i]
		if e.Replayed && x.Name == ExtReplayed {
			continue
		}
		dst = append(dst, ',', '"')
		dst = append(dst, x.Name...) // names are a-z0-9: nothing to escape
		dst = append(dst, '"', ':')
		dst = appendJSONValue(dst, x.Value)
	}
	if e.Replayed {
		dst = append(dst, `,"`+ExtReplayed+`":true`...)
	}
	return append(dst, '}')
}

func appendJSONValue(dst []byte, v Value) []byte {
	switch v.kind {
	case KindBool:
		return strconv.AppendBool(dst, v.n != 0)
	case KindInteger:
		return strconv.AppendInt(dst, int64(v.n), 10)
	}
	return appendJSONString(dst, v.s)
}

// appendJSONString appends s as a JSON string: '"', '\\' and control
// characters escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
