package main

import (
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The README's promise for the systemd unit (Type=notify, WatchdogSec):
// the real binary says READY=1 once devices can connect, pings the
// watchdog while it runs and says STOPPING=1 when asked to stop.
func TestSystemdNotifyAndWatchdog(t *testing.T) {
	e := newE2E(t, "builds the real binary")
	sock := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000") // pings every 100 ms
	t.Setenv("WATCHDOG_PID", "")

	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	seen := map[string]int{}
	next := func() string {
		buf := make([]byte, 256)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("notifications so far %v: %v\n%s", seen, err, p.log)
		}
		seen[string(buf[:n])]++
		return string(buf[:n])
	}
	for seen["READY=1"] == 0 || seen["WATCHDOG=1"] < 2 {
		next()
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	for next() != "STOPPING=1" {
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log)
	}
}
