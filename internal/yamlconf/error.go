package yamlconf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is one problem of a configuration. Validate and Compile functions
// create it where the problem is found, with a Path relative to their
// section; a Document locates it, filling File, Line and Column.
type Error struct {
	// File, Line and Column (1-based) locate the problem. Line is 0 until a
	// Document has located the error, or when nothing of the path is in the
	// file.
	File         string
	Line, Column int
	// Path is the field: relative to the section that reported it, and to
	// the file's root once located.
	Path Path
	// Msg says what is wrong: lower case, without the path.
	Msg string
	// ExprLine and ExprColumn (1-based; 0: not an expression error) point
	// inside an expression scalar. Locate folds them into Column when the
	// scalar is one plain or simply quoted line; otherwise Error prints
	// them after the message.
	ExprLine, ExprColumn int
}

// Errorf returns the problem at p.
func Errorf(p Path, format string, args ...any) *Error {
	return &Error{Path: p, Msg: fmt.Sprintf(format, args...)}
}

// Error reads `file:line:col: path: message`, leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
		b.WriteString(": ")
	}
	if !e.Path.IsRoot() {
		b.WriteString(e.Path.String())
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	switch {
	case e.ExprColumn > 0 && e.ExprLine > 1:
		fmt.Fprintf(&b, " (expression line %d, column %d)", e.ExprLine, e.ExprColumn)
	case e.ExprColumn > 0:
		fmt.Fprintf(&b, " (column %d)", e.ExprColumn)
	}
	return b.String()
}

// List collects the problems of a section. The zero List is empty.
type List []error

// Add records the problem at p.
func (l *List) Add(p Path, format string, args ...any) {
	*l = append(*l, Errorf(p, format, args...))
}

// Nest records every problem of err (a single error or an errors.Join of
// them) under p: an *Error's path is appended to p; any other error becomes
// a problem at p with its text. A nil err adds nothing.
func (l *List) Nest(p Path, err error) {
	for _, e := range Problems(err) {
		c := *e
		c.Path = p.Join(e.Path)
		*l = append(*l, &c)
	}
}

// Err returns the problems joined with errors.Join, or nil.
func (l List) Err() error { return errors.Join(l...) }

// Nest returns err with every problem put under p (see List.Nest).
func Nest(p Path, err error) error {
	var l List
	l.Nest(p, err)
	return l.Err()
}

// Problems flattens err (nested errors.Join included) into its problems. An
// error that is not an *Error (nor wraps one) becomes one with an empty path
// and its text as the message.
func Problems(err error) []*Error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return []*Error{{Msg: err.Error()}}
}
