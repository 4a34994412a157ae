package mqtt_test

import (
	"context"
	"fmt"
	"log/slog"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/pahoclient"
	"github.com/edgegate/edgegate/mqtt"
)

func ExampleBroker() {
	cfg := mqtt.DefaultConfig()
	cfg.Listeners = []mqtt.ListenerConfig{{ID: "devices", Type: mqtt.TypeTCP, Address: "127.0.0.1:0"}}

	stored := make(chan mqtt.Message, 1)
	h := mqtt.HandlerFunc(func(ctx context.Context, m mqtt.Message) error {
		// Store durably here; return nil only once the message is safe.
		m.Payload = append([]byte(nil), m.Payload...) // Payload is only valid during Handle
		stored <- m
		return nil
	})
	b, err := mqtt.New(cfg, h, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	<-b.Ready()

	c := pahoclient.New(paho.NewClientOptions().AddBroker("tcp://" + b.Addr("devices").String()).SetClientID("sensor-1"))
	c.Connect().Wait()
	c.Publish("sensors/temp", 1, false, "21.5").Wait() // returns after Handle returned nil
	m := <-stored
	fmt.Println(m.ClientID, m.Topic, string(m.Payload), m.QoS)
	c.Disconnect(0)

	cancel()
	fmt.Println(<-done)
	// Output:
	// sensor-1 sensors/temp 21.5 1
	// <nil>
}
