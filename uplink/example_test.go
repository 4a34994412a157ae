package uplink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/edgegate/edgegate/uplink"
)

// ExampleNew sends a batch of two events to a CloudEvents HTTP endpoint.
func ExampleNew() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("%s %s\n", r.Header.Get("Content-Type"), body)
	}))
	defer srv.Close()

	cfg := uplink.DefaultConfig()
	cfg.Name = "cloud"
	h := uplink.DefaultHTTPConfig()
	h.URL = srv.URL
	cfg.HTTP = &h
	if err := cfg.Validate(); err != nil {
		fmt.Println(err)
		return
	}
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

	fmt.Println(s.Send(context.Background(), records))
	// Output:
	// application/cloudevents-batch+json [{"specversion":"1.0","id":"0","source":"edgegate/dev1","type":"telemetry","datacontenttype":"application/json","data":{"n":0}},{"specversion":"1.0","id":"1","source":"edgegate/dev1","type":"telemetry","datacontenttype":"application/json","data":{"n":1}}]
	// <nil>
}

// sendFunc adapts a function to uplink.Sender.
type sendFunc func(ctx context.Context, records [][]byte) error

func (f sendFunc) Send(ctx context.Context, records [][]byte) error { return f(ctx, records) }

// batch is an uplink.Batch of records appended now.
type batch [][]byte

func (b batch) Records() [][]byte        { return b }
func (b batch) AppendedAt(int) time.Time { return time.Now() }

// ExampleDelivery delivers a batch to an endpoint that refuses one event
// for good: the others arrive in order, and the poison event comes back
// with the failure attached, for the caller to dead-letter.
func ExampleDelivery() {
	send := sendFunc(func(_ context.Context, records [][]byte) error {
		for _, r := range records {
			if strings.Contains(string(r), "POISON") {
				return &uplink.Error{Err: errors.New("400 Bad Request"), StatusCode: 400}
			}
		}
		fmt.Printf("delivered %s\n", bytes.Join(records, []byte(" ")))
		return nil
	})
	cfg := uplink.DefaultConfig()
	cfg.Name = "cloud"
	d := uplink.NewDelivery(cfg, send, nil, nil)
	b := batch{[]byte(`{"id":"a"}`), []byte(`{"id":"b"}`), []byte(`{"id":"POISON"}`), []byte(`{"id":"d"}`), []byte(`{"id":"e"}`)}
	dead, err := d.Deliver(context.Background(), context.Background(), b)
	fmt.Printf("dead-letter %s %v\n", bytes.Join(dead, nil), err)
	// Output:
	// delivered {"id":"a"} {"id":"b"}
	// delivered {"id":"d"} {"id":"e"}
	// dead-letter {"edgegateattempts":1,"edgegateerror":"400 Bad Request","edgegateerrorcode":400,"edgegateerrordest":"cloud","id":"POISON"} <nil>
}
