// Command edgebench measures a real edgegate binary end to end: paho devices publish
// to edgegate's MQTT listener, edgegate forwards CloudEvents over HTTP to a receiver
// inside edgebench, and edgebench reports throughput, latency, loss, duplicates and
// edgegate's peak RSS and CPU time. Each run starts a fresh edgegate in a temp dir.
//
// Usage:
//
//	edgebench [--edgegate ./bin/edgegate] [--devices 100] [--qos 0|1] [--messages 500]
//	          [--rate 5000] [--duration 10s] [--mode batch|binary|structured] [--auth] [--json FILE]
//
// By default it runs a QoS 0 and a QoS 1 throughput run (--messages per device, as fast
// as the gateway acks) and a QoS 1 latency run at a fixed --rate for --duration. With
// --auth every device is a user of its own (argon2id, verified once per run: a fresh
// gateway has an empty cache) and a per-device ACL is checked on every publish; the
// "connect s" column is how long the whole fleet took to connect. It exits
// 1 if a run failed, a QoS 1 run lost an acknowledged message, or an event
// violated CloudEvents 1.0.
//
// edgebench drives edgegate from outside, as devices and a cloud endpoint
// would: it must not import gateway or the packages gateway wires (buffer,
// mqtt, rules, uplink, cloudevent), so what it measures is the binary and
// not a library linked into the benchmark. It imports internal/devices (the
// paho devices) and internal/receiver (the CloudEvents endpoint, which checks
// events against CloudEvents 1.0), and no test support.
//
// Concurrency: runs happen one after another, each with a fresh edgegate
// process. During a run the devices publish from their own goroutines and
// the receiver's HTTP handler runs concurrently; the recorder it feeds is
// guarded by a mutex, and the run reads it once the load is over.
package main
