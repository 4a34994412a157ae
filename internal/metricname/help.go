package metricname

import (
	"bufio"
	"bytes"
	"io"
)

// FillHelp copies the text exposition src to w and gives every bare
// "# HELP family" line (VictoriaMetrics/metrics writes HELP without text
// when metadata is exposed) the text help returns for the family; a family
// for which help returns "" keeps its bare line. The text is escaped as the
// format wants in HELP: backslash as \\ and newline as \n. Every other line
// is copied as it is.
func FillHelp(w io.Writer, src []byte, help func(family string) string) error {
	bw := bufio.NewWriter(w)
	for len(src) > 0 {
		line := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i+1], src[i+1:]
		} else {
			src = nil
		}
		family, ok := bareHelp(line)
		text := ""
		if ok {
			text = help(family)
		}
		if text == "" {
			bw.Write(line)
			continue
		}
		bw.WriteString("# HELP ")
		bw.WriteString(family)
		bw.WriteByte(' ')
		writeHelpText(bw, text)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// bareHelp returns the family of a "# HELP family" line that has no text.
func bareHelp(line []byte) (family string, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte("# HELP "))
	if !ok {
		return "", false
	}
	rest = bytes.TrimRight(rest, "\r\n")
	if len(rest) == 0 || bytes.ContainsAny(rest, " \t") {
		return "", false
	}
	return string(rest), true
}

// writeHelpText writes s escaped as HELP text: backslash and newline.
func writeHelpText(w *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			w.WriteString(`\\`)
		case '\n':
			w.WriteString(`\n`)
		default:
			w.WriteByte(c)
		}
	}
}
