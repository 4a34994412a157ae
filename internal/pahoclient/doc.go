// Package pahoclient builds the eclipse/paho.mqtt.golang (v1) clients of
// edgegate: the MQTT uplink, the device simulator, the load generator and
// the tests. It owns one fact about paho: a client's session store must
// never hand paho a packet that paho may still be writing.
//
// Why: with CleanSession false, paho v1.5.1 resends the stored publishes
// after every reconnect (client.go resume, called from reconnect at
// client.go:346 and from Connect at client.go:291). resume sets the DUP flag
// on the packet the store returns (client.go:1114), and MemoryStore returns
// the very packet Publish created (memstore.go:57-83), which paho's writer
// goroutine may be encoding at that moment (net.go:293, packets.go:267):
//
//   - a Publish that was waiting on the outbound channel when the connection
//     dropped (client.go:828, for up to WriteTimeout) is sent on the new
//     connection while resume resends the same packet from the store;
//   - a Publish made after the new connection is up (client.go:629) but
//     stored before resume lists the store (client.go:1058) is sent by both.
//
// In both cases the packet goes out twice and the DUP write races with the
// writer's read. The race touches only that one bool, so the bytes on the
// wire are otherwise intact (topic, packet id and payload are never written
// after Publish), but it is a data race all the same, and the race detector
// fails every test that reconnects a paho client mid-stream.
//
// New wraps the store so that Put keeps a private copy of a PUBLISH and Get
// returns a fresh copy each time: resume then marks and sends its own copy,
// and no packet is shared between resume and a pending Publish. The wrapper
// also lists the stored keys in the order they were put, so resume resends
// in publish order (MemoryStore lists them in map order; FileStore in file
// name order, o.10 before o.9). Keys put by an earlier process (a FileStore
// reopened) come first, in the inner store's order.
//
// What the wrapper cannot change: paho still sends a packet twice in the
// cases above (once with DUP clear), and resume still completes the
// caller's token of every resent message at once, without error and
// without a PUBACK (messageids.go:90-99 claimID, #563). Count a publish as
// delivered only on evidence that survives a reconnect.
//
// pahoclient imports no other edgegate package; every package may import
// it. The store is safe for concurrent use, as paho requires. Every paho
// client in this module is built with New (a test checks this).
package pahoclient
