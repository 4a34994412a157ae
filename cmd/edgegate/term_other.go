//go:build !linux

package main

import (
	"errors"
	"os"
)

// isTerminal reports whether f is a character device (a terminal, most
// likely): echo cannot be turned off here, so such input is refused.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func echoOff(*os.File) (func(), error) {
	return nil, errors.New("not supported on this system: pipe the secret into edgegate passwd")
}
