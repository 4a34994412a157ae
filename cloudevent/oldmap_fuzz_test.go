package cloudevent_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/cloudevent"
)

// Temporary, while the sdk-go mapping exists: the record mapping agrees
// with it on arbitrary input.
func FuzzMapAgainstSDK(f *testing.F) {
	for _, c := range goldenCases() {
		var k, v string
		if len(c.msg.UserProperties) > 0 {
			k, v = c.msg.UserProperties[0].Key, c.msg.UserProperties[0].Value
		}
		f.Add(uint8(0), c.msg.Topic, c.msg.Payload, c.msg.ContentType, c.msg.ClientID, k, v, "s")
	}
	templates := [][]cloudevent.Topic{
		nil,
		{{Match: "s/{a}/{b}", Source: "{a}/x/{b}", Type: "t.{b}", Subject: "{a}"}},
		{{Match: "s/{a}/{b}", Source: "/{a}/{b}", Type: "{b}", Subject: "{a}"}},
		{{Match: "s/{a}/{b}", Source: "//{a}/{b}", Type: "t", Subject: "{b}"}},
		{{Match: "s/{a}/{b}", Source: "mqtt://{gateway_id}:1883/{a}?b={b}", Type: "t", Subject: "{b}"}},
		{{Match: "s/+/{b}", Source: "/x/{client_id}/{b}#{b}", Type: "t", Subject: "{topic}"}},
	}
	f.Fuzz(func(t *testing.T, tpl uint8, topic string, payload []byte, ct, client, key, value, gw string) {
		cfg := cloudevent.DefaultConfig()
		if ts := templates[int(tpl)%len(templates)]; ts != nil {
			cfg.Topics = ts
		}
		mp, err := cloudevent.Compile(cfg, gw)
		if err != nil {
			return
		}
		m := cloudevent.Message{Topic: topic, Payload: payload, ContentType: ct, ClientID: client, QoS: 1, Received: time.Unix(1795000000, 5),
			UserProperties: []cloudevent.Property{{Key: key, Value: value}, {Key: value, Value: key}}}
		old, err := mp.Map(m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := old.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		e, err := mp.MapRecord(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid: %v", err)
		}
		var se event.Event
		if err := json.Unmarshal(b, &se); err != nil || se.Validate() != nil {
			return // the sdk-go mapping made something sdk-go cannot read back, or invalid
		}
		se.SetID(e.ID)
		checkSameAsSDK(t, "record", &e, se)
	})
}
