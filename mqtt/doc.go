// Package mqtt embeds the mochi-mqtt broker that devices connect to. It is the
// only package that imports mochi (and gorilla/websocket, for its websocket
// listener).
//
// Every PUBLISH from a device is handed synchronously to a Handler on the
// publishing client's goroutine, before the broker acknowledges it, so the
// acknowledgement can mean "durably stored". The Handler's error decides what
// the device sees (nil: ack; ErrOverloaded or any other error: MQTT 5 gets
// reason 0x97, MQTT 3.1.1 gets no ack and is disconnected so it resends;
// ErrRejected: MQTT 5 gets 0x99, MQTT 3.1.1 is acked and the message dropped);
// see Handler. Messages are delivered to local MQTT subscribers only after the
// Handler accepted them. Messages the gateway itself publishes with
// Broker.Publish, broker $SYS topics and wills never reach Handle.
//
// Listeners are TCP, TLS, WebSocket and WebSocket over TLS (listener.go,
// tls.go); TLS certificates are re-read when their files change, and a
// verified client certificate's identity is offered to authentication.
// A guard hook (guard.go) runs before every other hook and answers what
// mochi would mishandle or what exceeds the limits: device publishes to
// '$' topics (mochi ignores those to $SYS/... without an ack), topics and
// filters over the limits, QoS 2 resends awaiting PUBREL (mochi answers
// 0x91), publishes over a client's rate, retained messages over the
// retained limits. clientConn (conn.go) bounds the memory of large packets
// being read at once.
//
// Fair share (fairshare.go): Broker.LimitIntake caps the publishes read
// from all connections together, divided max-min fairly: a connection
// under its share is never held back, one over it is read at its share on
// its own goroutine (counted, logged). The gateway sets the cap while an
// uplink delivers less than devices publish (package overload).
//
// Presence (presence.go): a Handler that also implements PresenceHandler
// learns when devices connect and disconnect, and gets each will after the
// broker published it. A will to a '$' topic, over the topic or payload
// limits or not permitted is removed when its device connects, so it is
// never sent.
//
// ClientList (clients.go) lists the connected devices: identity,
// listener, remote address, protocol version and since when.
//
// Lifecycle: New validates and allocates (no goroutine, nothing bound); Run
// binds every listener, serves until its context is done, and returns after
// all connections are closed and no Handle call is running. The Handler's
// context is cancelled when shutdown begins.
//
// Who may connect, publish and subscribe is decided by an Access
// (SetAccess; access.go), the only mochi hook that answers mochi's
// authentication and ACL calls. Without one every client is anonymous and
// may use every topic. A client's identity is decided once, when it
// connects, and is what Message.Username and Message.AuthMethod carry. A
// PUBLISH the Access denies is refused like ErrRejected but with reason
// 0x87 (not authorized) and never reaches the Handler; a denied SUBSCRIBE
// gets SUBACK 0x87 (MQTT 5) or 0x80 (3.1.1); a subscription never receives
// a message on a topic the Access denies it. Broker.Publish is never
// checked.
//
// Concurrency: Handle runs concurrently for different clients, serially for
// one client. Broker methods are safe for concurrent use.
//
// mqtt must not import buffer, uplink, rules, access or gateway; of
// edgegate's packages it imports only internal/yamlconf, for its config
// errors, internal/metricname, for its metric names, internal/certfile,
// for its listeners' certificates, and internal/ratelog, for its audit
// lines and its warnings about devices.
package mqtt
