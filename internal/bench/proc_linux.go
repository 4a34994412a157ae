package bench

import "syscall"

// childProcAttr makes the kernel kill edgegate if the bench dies without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
