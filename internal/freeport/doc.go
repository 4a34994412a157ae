// Package freeport owns how edgegate's tests and benchmark tool pick a
// 127.0.0.1 address for a process to listen on later: below the kernel's
// ephemeral port range, and never the same address twice in one process.
//
// Such an address often stays unbound for a while (an uplink that is meant
// to be down, a receiver started after the gateway). A port from the
// ephemeral range could meanwhile be handed to a bind to port 0 anywhere on
// the machine (an httptest server in another test package running in
// parallel), which would then receive traffic meant for the address. The
// kernel never hands out a port below that range for port 0.
//
// freeport imports only the standard library: it must not import any
// edgegate package. Addr is safe for concurrent use.
package freeport
