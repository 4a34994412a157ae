//go:build !linux

package bench

import "syscall"

// childProcAttr has nothing to add outside Linux (where /proc stats are missing too).
func childProcAttr() *syscall.SysProcAttr { return nil }
