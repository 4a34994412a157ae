package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen opens a unixgram socket like systemd's notify socket and returns
// its path and a function reading the next datagram.
func listen(t *testing.T) (string, func() string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, func() string {
		t.Helper()
		buf := make([]byte, 256)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifySendsState(t *testing.T) {
	path, next := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "")
	n := FromEnv()
	if !n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("enabled %v, watchdog %v", n.Enabled(), n.WatchdogInterval())
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != Ready {
		t.Fatalf("got %q, want %q", got, Ready)
	}
}

func TestOutsideSystemdDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000")
	n := FromEnv()
	if n.Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	n.RunWatchdog(context.Background(), func(err error) { t.Error(err) }) // returns at once
}

func TestWatchdogPingsUntilCancelled(t *testing.T) {
	path, next := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000") // 20 ms: pings every 10 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := FromEnv()
	if n.WatchdogInterval() != 20*time.Millisecond {
		t.Fatalf("interval %v", n.WatchdogInterval())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.RunWatchdog(ctx, func(err error) { t.Error(err) }) }()
	for range 3 {
		if got := next(); got != Watchdog {
			t.Fatalf("got %q, want %q", got, Watchdog)
		}
	}
	cancel()
	<-done
}

func TestWatchdogOfAnotherProcessIsIgnored(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/nonexistent")
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "1")
	if d := FromEnv().WatchdogInterval(); d != 0 {
		t.Fatalf("watchdog %v for pid 1", d)
	}
}
