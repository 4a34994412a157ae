//go:build !linux

package exetrim

import "errors"

// ErrUnsupported is Trim's error outside Linux.
var ErrUnsupported = errors.New("trimming the executable's pages needs Linux")

// Trim does nothing outside Linux.
func Trim() (before, after int64, err error) { return 0, 0, ErrUnsupported }

// Resident is 0 outside Linux.
func Resident() (int64, error) { return 0, ErrUnsupported }
