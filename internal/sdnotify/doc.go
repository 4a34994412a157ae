// Package sdnotify owns edgegate's side of systemd's service notification
// protocol (sd_notify(3)): it tells systemd when the gateway is ready
// (Type=notify), when it is stopping, and pings the watchdog (WatchdogSec)
// while the gateway runs, so that systemd restarts a gateway that hangs.
//
// It speaks the protocol itself (one datagram per state to the unix socket
// named by NOTIFY_SOCKET) rather than through a library: the protocol is a
// few lines and edgegate must not link libsystemd (static binaries).
// Outside systemd (no NOTIFY_SOCKET) every call does nothing.
//
// sdnotify imports only the standard library: it must not import any
// edgegate package. A Notifier is safe for concurrent use: each Notify sends
// one datagram on a socket of its own.
package sdnotify
