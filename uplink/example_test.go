package uplink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/edgegate/edgegate/cloudevent"
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

	var events []*cloudevent.Event
	for i := range 2 {
		events = append(events, &cloudevent.Event{
			ID: fmt.Sprint(i), Source: "edgegate/dev1", Type: "telemetry",
			DataContentType: "application/json", Data: fmt.Appendf(nil, `{"n":%d}`, i),
		})
	}

	fmt.Println(s.Send(context.Background(), events))
	// Output:
	// application/cloudevents-batch+json [{"specversion":"1.0","id":"0","source":"edgegate/dev1","type":"telemetry","datacontenttype":"application/json","data":{"n":0}},{"specversion":"1.0","id":"1","source":"edgegate/dev1","type":"telemetry","datacontenttype":"application/json","data":{"n":1}}]
	// <nil>
}

// sendFunc adapts a function to uplink.Sender.
type sendFunc func(ctx context.Context, events []*cloudevent.Event) error

func (f sendFunc) Send(ctx context.Context, events []*cloudevent.Event) error { return f(ctx, events) }

// batch is an uplink.Batch of events appended now.
type batch []*cloudevent.Event

func (b batch) Events() []*cloudevent.Event { return b }
func (b batch) AppendedAt(int) time.Time    { return time.Now() }

// ExampleDelivery delivers a batch to an endpoint that refuses one event
// for good: the others arrive in order, and the poison event comes back
// with the failure attached, for the caller to dead-letter.
func ExampleDelivery() {
	send := sendFunc(func(_ context.Context, events []*cloudevent.Event) error {
		var ids []string
		for _, e := range events {
			if e.ID == "POISON" {
				return &uplink.Error{Err: errors.New("400 Bad Request"), StatusCode: 400}
			}
			ids = append(ids, e.ID)
		}
		fmt.Printf("delivered %s\n", strings.Join(ids, " "))
		return nil
	})
	cfg := uplink.DefaultConfig()
	cfg.Name = "cloud"
	d := uplink.NewDelivery(cfg, send, nil, nil)
	var b batch
	for _, id := range []string{"a", "b", "POISON", "d", "e"} {
		b = append(b, &cloudevent.Event{ID: id, Source: "/s", Type: "t"})
	}
	dead, err := d.Deliver(context.Background(), context.Background(), b)
	for _, e := range dead {
		fmt.Printf("dead-letter %s %v\n", cloudevent.AppendJSON(nil, e), err)
	}
	// Output:
	// delivered a b
	// delivered d e
	// dead-letter {"specversion":"1.0","id":"POISON","source":"/s","type":"t","edgegateerror":"400 Bad Request","edgegateerrorcode":400,"edgegateerrordest":"cloud","edgegateattempts":1} <nil>
}
