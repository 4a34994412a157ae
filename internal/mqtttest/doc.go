// Package mqtttest is test support: paho MQTT 3.1.1 clients for tests that
// talk to a real broker (edgegate's, or mochi on 127.0.0.1). Options builds
// every client's options in one place; Connect and Dial connect with a
// timeout, Wait and Publish wait for a token with one, Subscribe collects a
// subscription's messages, Steady is a device publishing one message at a
// time until stopped. DialDroppable also returns a way to drop a client's
// connection without DISCONNECT (so the broker sends its will). DialRaw
// speaks MQTT through mochi's packet codec for what paho cannot send
// (chosen packet ids, DUP, MQTT 5). StartBroker
// serves a plain mochi broker for tests of device-side tools.
//
// paho.mqtt.golang v1.5.1 can complete a token without error after a
// reconnect although no PUBACK came (eclipse/paho.mqtt.golang #563): a test
// that counts deliveries must check them at the receiving end too.
//
// mqtttest imports paho, mochi and, of edgegate's packages, only
// internal/pahoclient (which builds its paho clients); it must not import
// any other, so the tests of any package may use it. Only _test.go files
// may import it (gateway/layout_test.go enforces that). Its functions
// are safe for concurrent use; Connect, Wait, Publish and Subscribe call
// tb.Fatal, so call them from the test's goroutine (Dial returns an error
// instead).
package mqtttest
