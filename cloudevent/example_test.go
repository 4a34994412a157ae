package cloudevent_test

import (
	"fmt"
	"time"

	"github.com/edgegate/edgegate/cloudevent"
)

// A device's telemetry becomes a CloudEvent with the default templates.
func ExampleMapper_Map() {
	m, err := cloudevent.Compile(cloudevent.DefaultConfig(), "edge-01")
	if err != nil {
		panic(err)
	}
	e, err := m.Map(cloudevent.Message{
		Topic:    "devices/th-01/telemetry",
		Payload:  []byte(`{"temperature":21.5}`),
		QoS:      1,
		Received: time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Source)
	fmt.Println(e.Type)
	fmt.Println(e.Subject)
	fmt.Println(e.DataContentType, string(e.Data))
	topic, _ := e.Extension(cloudevent.ExtTopic)
	qos, _ := e.Extension(cloudevent.ExtQoS)
	fmt.Println(topic, qos)
	// Output:
	// /edgegate/edge-01/devices/th-01
	// io.edgegate.device.telemetry
	// th-01
	// application/json {"temperature":21.5}
	// devices/th-01/telemetry 1
}
