// Package overload decides how fast the gateway takes device messages in
// when an uplink delivers, but more slowly than devices publish: it owns
// the overload section of the configuration and Controller, which turns
// periodic samples (device publishes read, and per uplink its backlog,
// events delivered and whether its sends fail) into an intake limit. The
// mqtt broker divides that limit fairly among the publishing connections
// (mqtt.Broker.LimitIntake), so that devices within their share are never
// held back and the backlog stops growing.
//
// It tells an overload from an outage by the uplink's own sends: while an
// uplink's sends fail, or it holds a backlog and delivers nothing for
// three steps, the backlog is what the buffer is for, and the limit is lifted at once. Only
// backlog that builds up while the uplink delivers without failing counts
// as overload.
//
// overload does no I/O and reads no clock: time comes in the samples. Of
// edgegate's packages it imports only internal/yamlconf, for its config
// errors; it must not import mqtt, buffer, uplink or gateway (the gateway
// samples them and applies the limit).
//
// Concurrency: a Controller is used by one goroutine at a time.
package overload
