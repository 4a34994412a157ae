package sdnotify

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// States sent with Notify.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends states to systemd. The zero value and a Notifier from
// FromEnv outside systemd do nothing.
type Notifier struct {
	socket   string        // NOTIFY_SOCKET; "" = not under systemd
	watchdog time.Duration // WATCHDOG_USEC; 0 = no watchdog
}

// FromEnv reads NOTIFY_SOCKET and WATCHDOG_USEC (honouring WATCHDOG_PID
// when set: the watchdog is this process's only if the pid matches). It
// unsets neither: a child process started by the gateway inherits nothing
// it could act on, since the gateway starts none.
func FromEnv() Notifier {
	n := Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return n
	}
	if usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		n.watchdog = time.Duration(usec) * time.Microsecond
	}
	return n
}

// Enabled reports whether the process runs under systemd's notification
// protocol.
func (n Notifier) Enabled() bool { return n.socket != "" }

// WatchdogInterval is the watchdog timeout systemd set (WatchdogSec), 0 if
// none.
func (n Notifier) WatchdogInterval() time.Duration { return n.watchdog }

// Notify sends state (e.g. Ready). It does nothing outside systemd.
func (n Notifier) Notify(state string) error {
	if n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if addr.Name[0] == '@' { // abstract socket
		addr.Name = "\x00" + addr.Name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// RunWatchdog pings the watchdog at half its interval until ctx is done;
// systemd restarts the service when an interval passes without a ping,
// that is when the process hangs or is stopped. A failed ping is reported
// to onErr once. It returns at once when there is no watchdog.
func (n Notifier) RunWatchdog(ctx context.Context, onErr func(error)) {
	if n.socket == "" || n.watchdog <= 0 {
		return
	}
	t := time.NewTicker(n.watchdog / 2)
	defer t.Stop()
	reported := false
	for {
		if err := n.Notify(Watchdog); err != nil && !reported {
			reported = true
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
