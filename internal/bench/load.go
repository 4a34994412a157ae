package bench

import (
	"strconv"
	"time"

	"github.com/edgegate/edgegate/internal/devices"
)

// deviceTopic is the topic template of the bench devices; the gateway config maps it to
// the CloudEvent type io.edgegate.device.telemetry.
const deviceTopic = "devices/{device}/telemetry"

// loadConfig returns the devices of one run: o.Devices clients d-001, d-002, … publishing
// spec's load as bench-<id>, without reconnecting. With o.Auth a device's client id
// is its id, as its user name, so that the ACL's %u is the topic's device.
func loadConfig(broker string, o benchOptions, spec runSpec) devices.Config {
	c := devices.Config{
		Broker:         broker,
		Devices:        o.Devices,
		IDPrefix:       "d-",
		ClientIDPrefix: "bench-",
		Topic:          deviceTopic,
		CleanSession:   true,
		KeepAlive:      60 * time.Second,
		ConnectTimeout: 10 * time.Second,
		AckTimeout:     30 * time.Second,
		QoS:            spec.QoS,
		Inflight:       o.Inflight,
		Rate:           spec.Rate,
		Messages:       spec.Messages,
		Duration:       spec.Duration,
		Payload: func(_ int, id string) devices.Payload {
			return func(seq int64, now time.Time) []byte { return devicePayload(id, seq, now.UnixNano(), o.Payload) }
		},
	}
	if o.Auth {
		c.ClientIDPrefix, c.PerDeviceUser, c.Password = "", true, benchSecret
	}
	return c
}

// devicePayload is the JSON the devices publish and the recorder expects back as the
// CloudEvent's data; size > its natural length (about 60 bytes) pads it to
// size bytes with a "pad" field.
func devicePayload(dev string, seq int64, sentNS int64, size int) []byte {
	b := make([]byte, 0, max(64, size))
	b = append(b, `{"dev":"`...)
	b = append(b, dev...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"sent_ns":`...)
	b = strconv.AppendInt(b, sentNS, 10)
	if pad := size - len(b) - len(`,"pad":""}`); pad > 0 {
		b = append(b, `,"pad":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	b = append(b, '}')
	return b
}

// steadyPrefix starts the ids of an overload run's steady devices.
const steadyPrefix = "s-"

// steadyConfig returns the steady devices of an overload run: spec.Steady
// clients s-001, … publishing spec.SteadyRate msgs/s in all at spec's QoS
// for spec's duration, beside the load of loadConfig.
func steadyConfig(broker string, o benchOptions, spec runSpec) devices.Config {
	o.Devices = spec.Steady
	c := loadConfig(broker, o, runSpec{QoS: spec.QoS, Rate: spec.SteadyRate, Duration: spec.Duration})
	c.IDPrefix = steadyPrefix
	return c
}

// mergeResults adds the steady fleet's result to the load's.
func mergeResults(a, b devices.Result) devices.Result {
	if b.Start.Before(a.Start) && !b.Start.IsZero() {
		a.Start = b.Start
	}
	if b.End.After(a.End) {
		a.End = b.End
	}
	a.Sent += b.Sent
	a.Acked += b.Acked
	a.Failed += b.Failed
	a.Devices = append(a.Devices, b.Devices...)
	return a
}
