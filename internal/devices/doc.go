// Package devices owns simulated MQTT devices: a Fleet connects one paho
// client per device (at most 16 connects at a time), publishes on a fixed
// schedule (a total rate spread evenly over the devices, or as fast as the
// acknowledgements allow, with a bounded number of publishes in flight per
// device) and counts what was acknowledged. `edgegate simulate` and
// `edgegate bench` drive it; they keep their flags and printing.
//
// Every acknowledgement is awaited at most AckTimeout from its publish, so a
// run ends at most AckTimeout after its context (or Duration) does, even
// when the broker has gone away. paho.mqtt.golang v1.5.1 can complete a
// token without a PUBACK after a reconnect (eclipse/paho.mqtt.golang #563):
// Acked counts what paho reported, which a benchmark must check at the
// receiving end.
//
// devices imports paho and, of edgegate's packages, only internal/pahoclient
// (its clients resume their sessions without racing paho's writer): it
// must not import the gateway's packages, since it plays the devices
// outside it. Fleet
// methods are safe for concurrent use; Run may be called once.
package devices
