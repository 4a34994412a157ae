package cloudevent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/cloudevent"
)

// sdkParse reads a CloudEvent in the JSON format with sdk-go, as receivers
// (and edgegate's senders until now) read it.
func sdkParse(t testing.TB, b []byte) event.Event {
	t.Helper()
	var se event.Event
	if err := json.Unmarshal(b, &se); err != nil {
		t.Fatalf("sdk-go cannot read %s: %v", b, err)
	}
	return se
}

// diffSDK lists how e differs from what sdk-go read: attributes,
// extensions (with their types) and data.
func diffSDK(e *cloudevent.Event, se event.Event) []string {
	var d []string
	cmp := func(name string, got, want any) {
		if got != want {
			d = append(d, fmt.Sprintf("%s: record %#v, sdk-go %#v", name, got, want))
		}
	}
	cmp("specversion", cloudevent.SpecVersion, se.SpecVersion())
	cmp("id", e.ID, se.ID())
	cmp("source", e.Source, se.Source())
	cmp("type", e.Type, se.Type())
	cmp("subject", e.Subject, se.Subject())
	cmp("datacontenttype", e.DataContentType, se.DataContentType())
	cmp("dataschema", e.DataSchema, se.DataSchema())
	if !e.Time.Equal(se.Time()) {
		d = append(d, fmt.Sprintf("time: record %v, sdk-go %v", e.Time, se.Time()))
	}
	want := se.Extensions()
	got := map[string]any{}
	for _, x := range e.Extensions {
		got[x.Name] = x.Value.Any()
	}
	if e.Replayed {
		got[cloudevent.ExtReplayed] = true
	}
	if len(got) != len(want) {
		d = append(d, fmt.Sprintf("extensions: record %v, sdk-go %v", got, want))
	}
	for k, v := range want {
		cmp("extension "+k, got[k], v)
	}
	if len(e.Data) > 0 && !e.DataBase64 { // a JSON value: white space around and in it may differ
		var a, b bytes.Buffer
		if json.Compact(&a, e.Data) != nil || json.Compact(&b, se.Data()) != nil || a.String() != b.String() {
			d = append(d, fmt.Sprintf("JSON data: record %q, sdk-go %q", e.Data, se.Data()))
		}
	} else if !bytes.Equal(e.Data, se.Data()) {
		d = append(d, fmt.Sprintf("data: record %q, sdk-go %q", e.Data, se.Data()))
	}
	if len(e.Data) > 0 {
		cmp("data_base64", e.DataBase64, se.DataBase64)
	}
	return d
}

func checkSameAsSDK(t testing.TB, what string, e *cloudevent.Event, se event.Event) {
	t.Helper()
	for _, p := range diffSDK(e, se) {
		t.Errorf("%s: %s", what, p)
	}
}
