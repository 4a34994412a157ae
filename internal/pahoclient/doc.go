// Package pahoclient builds the eclipse/paho.mqtt.golang (v1) clients of
// edgegate: the MQTT uplink, the simulated devices and the tests. It owns
// one fact about paho: how its session resume must be fenced off from
// Publish and from the next connection.
//
// With a session store, paho v1.5.1 resends the stored publishes after
// every reconnect (client.go resume, called from reconnect at client.go:346
// whatever CleanSession is, and from Connect at client.go:291). resume sets
// the DUP flag on the packet the store returns (client.go:1114), and
// MemoryStore returns the very packet Publish created (memstore.go:57-83),
// which paho's writer goroutine may be encoding at that moment (net.go:293,
// packets.go:267). A packet is both resumed and sent by Publish when:
//
//   - a Publish was waiting on the outbound channel when the connection
//     dropped (client.go:828, up to WriteTimeout) and the new connection's
//     output goroutine takes it;
//   - a Publish stores its packet (client.go:809) after the new connection
//     is up (client.go:629) but before resume lists the store
//     (client.go:1058).
//
// The packet then goes out twice, and resume's DUP write races with the
// writer's read. That bool is the only field resume writes, so topic,
// packet id and payload stay intact; what the race decides is the DUP bit
// of the copy Publish sends. Receivers that recognise resends by DUP (the
// gateway does) depend on it: the second copy must carry DUP.
//
// New fences the two apart:
//
//   - The store keeps a private copy of each PUBLISH (Put) and returns a
//     fresh copy on every Get, so resume marks and sends its own packet and
//     no packet is shared with the writer.
//   - The store's All, which resume calls first, waits until no Publish of
//     the client is under way. A packet that a Publish hands to paho is
//     then queued for the writer before resume's copy of it: the first copy
//     on the wire has DUP clear, the second has DUP set.
//   - All lists keys in the order they were put, so resume resends in
//     publish order (MemoryStore lists them in map order; FileStore in file
//     name order, o.10 before o.9). Keys put by an earlier process (a
//     FileStore reopened) come first, in the inner store's order.
//   - MaxResumePubInFlight is enforced by the store, and paho gets 0. With a
//     limit, paho's resume starts a goroutine (client.go:1033-1044) whose
//     select reads the client's stop channel field (client.go:1040) with
//     no lock and no ordering: it may run after resume has returned, while
//     the next connection assigns the field (client.go:610). paho orders
//     resume's own reads of that field before the next connection (its
//     incoming goroutine waits for resume, net.go:176-180); not this one,
//     so every reconnect of such a client is a data race (a pointer read
//     that cannot do harm, but the race detector fails tests on it). The
//     store's Get holds resume instead while the limit of the publishes it
//     resent await their PUBACK (Del), and lets it go once the connection
//     is no longer open, so that resume reaches paho's own exit.
//
// What New cannot change: paho still sends such a packet twice, and resume
// still completes the caller's token of every resent message at once,
// without error and without a PUBACK (messageids.go:90-99 claimID, #563):
// count a publish as delivered only on evidence that survives a reconnect.
// Publish through the client New returns: paho passes its inner client to
// handlers, and a Publish on that one is not fenced.
//
// pahoclient imports no other edgegate package; every package may import
// it. The client and its store are safe for concurrent use. Every paho
// client in this module is built with New (a test checks this).
package pahoclient
