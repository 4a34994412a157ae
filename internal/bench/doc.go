// Package bench is `edgegate bench` (and `make bench`): it measures a real
// edgegate binary end to end — paho devices publish to its MQTT listener, it
// forwards CloudEvents over HTTP to a receiver inside the bench — next to
// the raw ceiling: the same devices publishing to the embedded broker
// (package mqtt) started in-process with a Handler that only counts. It
// reports throughput and its ratio to the ceiling, latency, loss,
// duplicates, the gateway's peak RSS, CPU seconds per 1,000 events and bytes
// written to disk per event (/proc/PID/io), and for an outage run the
// backlog and its drain rate while live traffic continues. Each gateway run
// starts a fresh edgegate in a temp dir, with the topic mapping and 10 rules
// that match nothing, so every event pays for evaluating them.
//
//	edgegate bench [--devices 100[,1000]] [--qos 0|1] [--messages 500]
//	               [--rate 5000] [--duration 10s] [--outage 0] [--mode batch,binary,structured,mqtt]
//	               [--ceiling=true] [--overload 0] [--auth] [--startup N[,N]] [--startup-drain 20s]
//	               [--quick] [--profile DIR] [--json FILE|-]
//
// By default it runs, per device count, the ceiling's QoS 0 and QoS 1
// throughput runs, then per uplink mode a QoS 0 and a QoS 1 throughput run
// (--messages per device, as fast as acks come), a QoS 1 latency run at a
// fixed --rate for --duration and, with --outage, a fixed-rate run of 3×
// --outage whose receiver refuses every request (503; in mqtt mode the
// broker withholds every PUBACK and drops the uplink's connection) for
// --outage after a third of it; with --overload, a QoS 1 run at twice the mode's measured
// QoS 1 throughput beside 10 steady devices (issue 11). --profile DIR turns
// on the gateway's admin.pprof and saves each run's CPU and allocation
// profiles there. --quick uses tiny numbers: it checks the bench, not the
// gateway. Main returns an error if a run failed, a QoS 1 run lost an
// acknowledged message, or an event violated CloudEvents 1.0.
//
// bench drives the gateway from outside, as devices and a cloud endpoint
// would: it must not import gateway or the packages gateway wires (buffer,
// rules, uplink, cloudevent), so what it measures is the binary and not a
// library linked into the benchmark. The only exception is the embedded
// broker (package mqtt), for two jobs where a broker is what is measured
// against: the ceiling, which is the broker alone by definition, and mqtt
// mode's cloud broker, whose Handler is the same recorder the HTTP receiver
// feeds (one account of received, lost, duplicated and latency). It also
// imports internal/devices (the paho devices), internal/receiver (the
// CloudEvents HTTP endpoint) and internal/ceconform (both check events
// against CloudEvents 1.0; an MQTT message is one structured event), and
// internal/freeport, and no test support. Startup runs (--startup N, issue
// 13) write N events into a fresh buffer directory before the binary
// starts, through buffer and cloudevent, as the gateway would have stored
// them during an outage: that is setup, written in seconds instead of the
// minutes devices would take; the binary then opens, serves and drains it,
// and that is what is measured (startup.go).
//
// Concurrency: runs happen one after another, each gateway run with a fresh
// edgegate process. During a run the devices publish from their own
// goroutines and the receiver's HTTP handler (or the broker's Handler, in
// mqtt mode and for the ceiling) runs concurrently; the recorder it feeds
// is guarded by a mutex and atomic counters, and the run reads it once the
// load is over. The outage run's
// switch is an atomic flag flipped by one goroutine that the run waits for.
package bench
