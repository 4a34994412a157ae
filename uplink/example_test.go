package uplink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/edgegate/edgegate/uplink"
)

// ExampleNew sends a batch of two events to a CloudEvents HTTP endpoint and
// shows how a forward loop classifies failures.
func ExampleNew() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("%s %s\n", r.Header.Get("Content-Type"), body)
	}))
	defer srv.Close()

	cfg := uplink.DefaultConfig()
	cfg.Name = "cloud"
	cfg.URL = srv.URL
	s, err := uplink.New(cfg, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}

	var records [][]byte
	for i := range 2 {
		e := event.New()
		e.SetID(fmt.Sprint(i))
		e.SetSource("edgegate/dev1")
		e.SetType("telemetry")
		_ = e.SetData(event.ApplicationJSON, map[string]int{"n": i})
		b, _ := json.Marshal(e)
		records = append(records, b)
	}

	err = s.Send(context.Background(), records)
	retry, after := uplink.Classify(err)
	fmt.Println(err, retry, after)

	b := uplink.NewBackoff(uplink.RetryConfig{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 1e-9}, nil)
	fmt.Println(b.Next().Round(time.Millisecond), b.Next().Round(time.Millisecond))
	// Output:
	// application/cloudevents-batch+json [{"specversion":"1.0","id":"0","source":"edgegate/dev1","type":"telemetry","datacontenttype":"application/json","data":{"n":0}},{"specversion":"1.0","id":"1","source":"edgegate/dev1","type":"telemetry","datacontenttype":"application/json","data":{"n":1}}]
	// <nil> false 0s
	// 1s 2s
}
