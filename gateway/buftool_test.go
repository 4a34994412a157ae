package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/uplink"
)

// adminClient calls a running test gateway's admin API.
type adminClient struct {
	t    *testing.T
	base string
}

func newAdminClient(t *testing.T, gw *running) adminClient {
	return adminClient{t: t, base: "http://" + gw.g.AdminAddr().String()}
}

// do sends a request and decodes a JSON answer into out; it returns the
// status and the raw body.
func (c adminClient) do(method, path string, in, out any) (int, []byte) {
	c.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			c.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode, raw
}

func (c adminClient) list(req ListRequest) ListResult {
	c.t.Helper()
	var res ListResult
	if code, raw := c.do("GET", "/v1/buffer/events?"+req.Values().Encode(), nil, &res); code != http.StatusOK {
		c.t.Fatalf("list %+v: %d %s", req, code, raw)
	}
	return res
}

// waitList polls until queue holds n events.
func (c adminClient) waitList(queue string, n int) []EventSummary {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := c.list(ListRequest{Queue: queue})
		if len(res.Events) == n {
			return res.Events
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("queue %s holds %d events, want %d: %+v", queue, len(res.Events), n, res.Events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitArrivals waits until rcv accepted n events, repeats included, and
// returns them in arrival order.
func waitArrivals(t *testing.T, rcv *cetest.Server, n int) []event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := rcv.Events()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d events, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The dead-letter round trip on a running gateway, through the admin API:
// a refused event is dead-lettered, listed with its failure, shown as
// CloudEvents JSON; once the endpoint accepts, a replay delivers it marked
// replayed and without its old failure, exactly once; delivered events are
// retained and can be replayed from a time on; purge removes only what it
// names.
func TestBufferToolsOnRunningGateway(t *testing.T) {
	rcv := newReceiver(t)
	rcv.RejectIf(func(e event.Event) bool { return strings.Contains(string(e.Data()), `"poison":true`) })
	cfg := testConfig(t, rcv.URL())
	cfg.Buffer.Retain = time.Hour
	gw := start(t, cfg)
	api := newAdminClient(t, gw)

	c := mqtttest.Connect(t, gw.mqtt, "d1")
	for i := range 5 {
		payload := fmt.Sprintf(`{"seq":%d}`, i)
		if i == 2 {
			payload = `{"seq":2,"poison":true}`
		}
		if tok := c.Publish("devices/d1/telemetry", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	rcv.WaitFor(4, 10*time.Second)

	dead := api.waitList("deadletter.cloud", 1)[0]
	if dead.Error == "" || dead.ErrorCode != 400 || dead.ErrorDest != "cloud" || dead.Attempts != 1 ||
		dead.Type != "io.edgegate.device.telemetry" || dead.Subject != "d1" || dead.ID == "" || dead.Size == 0 {
		t.Fatalf("dead letter listed as %+v", dead)
	}
	retained := api.waitList("retained.uplink.cloud", 4) // the dead letter is not among them
	for _, e := range retained {
		if e.ID == dead.ID {
			t.Fatalf("the refused event is in the delivered history: %+v", e)
		}
	}

	// A queue's counts follow its records: an ack's history is listed
	// once Badger has committed it and counted a moment later, so stats
	// may lag a listing briefly (it did under -race on a slow machine).
	for deadline := time.Now().Add(20 * time.Second); ; {
		var st BufferStats
		api.do("GET", "/v1/buffer/stats", nil, &st)
		kinds := map[string]string{}
		for _, q := range st.Queues {
			kinds[q.Name] = q.Kind + "/" + q.Uplink + fmt.Sprintf("/%d", q.Records)
		}
		if kinds["uplink.cloud"] == "uplink/cloud/0" && kinds["deadletter.cloud"] == "deadletter/cloud/1" &&
			kinds["retained.uplink.cloud"] == "retained/cloud/4" && st.Retain == "1h0m0s" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// show: the event as an uplink would send it, with its failure.
	code, raw := api.do("GET", "/v1/buffer/events/"+url.PathEscape(dead.ID), nil, nil)
	if code != http.StatusOK {
		t.Fatalf("show: %d %s", code, raw)
	}
	var shown map[string]any
	if err := json.Unmarshal(raw, &shown); err != nil {
		t.Fatal(err)
	}
	if shown["id"] != dead.ID || shown["specversion"] != "1.0" || shown[uplink.ExtErrorDest] != "cloud" ||
		fmt.Sprint(shown["data"]) != "map[poison:true seq:2]" {
		t.Fatalf("show: %s", raw)
	}
	if code, raw := api.do("GET", "/v1/buffer/events/nope", nil, nil); code != http.StatusNotFound {
		t.Fatalf("show unknown id: %d %s", code, raw)
	}

	// The endpoint is fixed; the replay delivers the dead letter once.
	rcv.Respond(nil)
	var rr ReplayResult
	if code, raw := api.do("POST", "/v1/buffer/replay", ReplayRequest{Queue: "deadletter.cloud"}, &rr); code != http.StatusOK {
		t.Fatalf("replay: %d %s", code, raw)
	}
	if rr.Replayed != 1 || rr.Removed != 1 || rr.To != "cloud" {
		t.Fatalf("replay: %+v", rr)
	}
	got := rcv.WaitFor(5, 10*time.Second)
	last := got[len(got)-1]
	if last.ID() != dead.ID || last.Extensions()[uplink.ExtReplayed] != true {
		t.Fatalf("replayed event: %s", last)
	}
	for _, k := range []string{uplink.ExtError, uplink.ExtErrorCode, uplink.ExtErrorDest, uplink.ExtAttempts} {
		if _, ok := last.Extensions()[k]; ok {
			t.Errorf("replayed event still carries %s", k)
		}
	}
	api.waitList("deadletter.cloud", 0)
	if code, _ := api.do("POST", "/v1/buffer/replay", ReplayRequest{Queue: "deadletter.cloud"}, &rr); code != http.StatusOK || rr.Replayed != 0 {
		t.Fatalf("second replay: %d %+v", code, rr)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(rcv.Events()); n != 5 {
		t.Fatalf("receiver got %d events, want 5: the replay repeated", n)
	}

	// Replay from a time on: exactly the retained events stored since then.
	retained = api.waitList("retained.uplink.cloud", 5)
	since := retained[2].Stored
	if code, raw := api.do("POST", "/v1/buffer/replay", ReplayRequest{To: "cloud", Filter: Filter{Since: since}}, &rr); code != http.StatusOK {
		t.Fatalf("replay since: %d %s", code, raw)
	}
	if rr.Replayed != 3 || rr.Removed != 0 || rr.Queue != "retained.uplink.cloud" {
		t.Fatalf("replay since: %+v", rr)
	}
	got = waitArrivals(t, rcv, 8)
	for i, e := range got[5:] {
		if e.ID() != retained[2+i].ID || e.Extensions()[uplink.ExtReplayed] != true {
			t.Errorf("replayed %d: %s, want %s replayed", i, e.ID(), retained[2+i].ID)
		}
	}

	// Bad requests say what is wrong.
	for _, tc := range []struct {
		path string
		body any
		want string
	}{
		{"/v1/buffer/replay", ReplayRequest{}, "name the queue"},
		{"/v1/buffer/replay", ReplayRequest{Queue: "deadletter.cloud", To: "nope"}, `no uplink \"nope\"`},
		{"/v1/buffer/replay", ReplayRequest{Queue: "uplink.cloud"}, "name the uplink"},
		{"/v1/buffer/replay", map[string]any{"queue": "x", "colour": 1}, "unknown field"},
		{"/v1/buffer/purge", PurgeRequest{Queue: "retained.uplink.cloud"}, "name what to remove"},
		{"/v1/buffer/purge", PurgeRequest{All: true}, "name the queue"},
	} {
		code, raw := api.do("POST", tc.path, tc.body, nil)
		if code != http.StatusBadRequest || !strings.Contains(string(raw), tc.want) {
			t.Errorf("POST %s %+v: %d %s, want 400 %q", tc.path, tc.body, code, raw, tc.want)
		}
	}
	if code, _ := api.do("POST", "/v1/buffer/purge", PurgeRequest{Queue: "nope", All: true}, nil); code != http.StatusNotFound {
		t.Errorf("purge unknown queue: %d, want 404", code)
	}

	// Purge removes only what it names.
	retained = api.waitList("retained.uplink.cloud", 8)
	var pr PurgeResult
	api.do("POST", "/v1/buffer/purge", PurgeRequest{Queue: "retained.uplink.cloud", Filter: Filter{ID: retained[0].ID}}, &pr)
	left := api.waitList("retained.uplink.cloud", 7)
	if pr.Purged != 1 || left[0].ID != retained[1].ID {
		t.Fatalf("purge by id: %+v, left %+v", pr, left)
	}
	api.do("POST", "/v1/buffer/purge", PurgeRequest{Queue: "retained.uplink.cloud", Before: retained[3].Stored}, &pr)
	left = api.waitList("retained.uplink.cloud", 5)
	if pr.Purged != 2 || left[0].ID != retained[3].ID {
		t.Fatalf("purge before: %+v, left %+v", pr, left)
	}
	api.do("POST", "/v1/buffer/purge", PurgeRequest{Queue: "retained.uplink.cloud", All: true}, &pr)
	if pr.Purged != 5 {
		t.Fatalf("purge all: %+v", pr)
	}
	api.waitList("retained.uplink.cloud", 0)
	if bad := rcv.Violations(); len(bad) > 0 {
		t.Fatalf("invalid CloudEvents: %v", bad)
	}
}

// List filters by attribute and time, pages with a limit, and reports a
// record that is not an event without failing.
func TestBufferToolList(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable) // everything stays queued
	gw := start(t, testConfig(t, rcv.URL()))
	api := newAdminClient(t, gw)
	c := mqtttest.Connect(t, gw.mqtt, "d")
	for i := range 6 {
		dev := []string{"a", "b"}[i%2]
		if tok := c.Publish("devices/"+dev+"/telemetry", 1, false, fmt.Sprintf(`{"seq":%d}`, i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	if err := gw.g.buffer().Append(t.Context(), []buffer.Record{{Queue: "uplink.cloud", Data: []byte("not an event")}}, true); err != nil {
		t.Fatal(err)
	}
	all := api.list(ListRequest{Queue: "uplink.cloud"})
	if len(all.Events) != 7 || all.More || all.Events[6].Invalid == "" || all.Events[6].Size != 12 {
		t.Fatalf("list: %+v", all)
	}
	page := api.list(ListRequest{Queue: "uplink.cloud", Limit: 4})
	if len(page.Events) != 4 || !page.More || page.Next != page.Events[3].Seq {
		t.Fatalf("page: %+v", page)
	}
	rest := api.list(ListRequest{Queue: "uplink.cloud", After: page.Next})
	if len(rest.Events) != 3 || rest.Events[0].Seq != page.Next+1 {
		t.Fatalf("rest: %+v", rest)
	}
	b := api.list(ListRequest{Filter: Filter{Subject: "b"}})
	if len(b.Events) != 3 || b.Events[0].Subject != "b" {
		t.Fatalf("subject b: %+v", b)
	}
	since := api.list(ListRequest{Queue: "uplink.cloud", Filter: Filter{Since: all.Events[4].Stored}})
	if len(since.Events) != 3 || since.Events[0].Seq != all.Events[4].Seq {
		t.Fatalf("since: %+v", since)
	}
	one := api.list(ListRequest{Filter: Filter{ID: all.Events[1].ID}})
	if len(one.Events) != 1 || one.Events[0].Seq != all.Events[1].Seq {
		t.Fatalf("id: %+v", one)
	}
	if code, raw := api.do("GET", "/v1/buffer/events?queue=nope", nil, nil); code != http.StatusNotFound {
		t.Fatalf("unknown queue: %d %s", code, raw)
	}
	if code, raw := api.do("GET", "/v1/buffer/events?since=yesterday", nil, nil); code != http.StatusBadRequest || !strings.Contains(string(raw), "RFC 3339") {
		t.Fatalf("bad time: %d %s", code, raw)
	}

	// The client: the same listing, and any id reaches Show intact.
	client := NewBufferClient(gw.g.AdminAddr().String(), ClientOptions{})
	defer client.Close()
	res, err := client.List(t.Context(), ListRequest{Queue: "uplink.cloud", Filter: Filter{Subject: "a"}})
	if err != nil || len(res.Events) != 3 {
		t.Fatalf("client List = %+v, %v", res, err)
	}
	raw, err := client.Show(t.Context(), all.Events[0].ID, "uplink.cloud")
	if err != nil || !strings.Contains(string(raw), all.Events[0].ID) {
		t.Fatalf("client Show = %s, %v", raw, err)
	}
	for _, id := range []string{"a/b", "x?y#z", "100%", "../stats", " "} {
		_, err := client.Show(t.Context(), id, "")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("no event %q", id)) {
			t.Errorf("client Show(%q) = %v, want no event", id, err)
		}
	}
}

// The list query round-trips through Values, and nothing a client sends
// makes ParseListQuery panic.
func FuzzParseListQuery(f *testing.F) {
	f.Add("queue=deadletter.cloud&limit=10&since=2026-01-02T03:04:05.5Z")
	f.Add("after=3&queue=q&id=%2F%00&type=t&source=%2Fs&subject=x&until=2026-01-02T03:04:05%2B02:00")
	f.Add("limit=-1&limit=2")
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := ParseListQuery(raw)
		if err != nil {
			return
		}
		back, err := ParseListQuery(r.Values().Encode())
		if err != nil {
			t.Fatalf("re-encoded %+v: %v", r, err)
		}
		if !back.Since.Equal(r.Since) || !back.Until.Equal(r.Until) {
			t.Fatalf("times changed: %+v → %+v", r, back)
		}
		back.Since, back.Until, r.Since, r.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if back != r {
			t.Fatalf("round trip: %+v → %+v", r, back)
		}
	})
}

// On a stopped gateway the tool opens the buffer itself: refused while the
// gateway runs, read-only without a configuration, read-write with one.
func TestBufferToolOffline(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable)
	cfg := testConfig(t, rcv.URL())
	gw := start(t, cfg)
	c := mqtttest.Connect(t, gw.mqtt, "d")
	publishSeq(t, c, "d", 0, 3)
	compiled, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBufferTool(compiled, false, nil); !errors.Is(err, buffer.ErrLocked) {
		t.Fatalf("OpenBufferTool on a running gateway's buffer = %v, want ErrLocked", err)
	}
	c.Disconnect(0)
	gw.stop(t)

	ro, err := OpenBufferDir(cfg.Buffer.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ro.List(ListRequest{Queue: "uplink.cloud"})
	if err != nil || len(res.Events) != 3 {
		t.Fatalf("List = %+v, %v", res, err)
	}
	if _, err := ro.Replay(t.Context(), ReplayRequest{Queue: "uplink.cloud", To: "cloud"}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("Replay without a configuration = %v", err)
	}
	if _, err := ro.Purge(PurgeRequest{Queue: "uplink.cloud", All: true}); !errors.Is(err, buffer.ErrReadOnly) {
		t.Fatalf("Purge read-only = %v", err)
	}
	ro.Close()

	rw, err := OpenBufferTool(compiled, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := rw.Purge(PurgeRequest{Queue: "uplink.cloud", Filter: Filter{ID: res.Events[1].ID}})
	if err != nil || pr.Purged != 1 {
		t.Fatalf("Purge = %+v, %v", pr, err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err = OpenBufferTool(compiled, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	left, _ := ro.List(ListRequest{Queue: "uplink.cloud"})
	if len(left.Events) != 2 || left.Events[0].ID != res.Events[0].ID || left.Events[1].ID != res.Events[2].ID {
		t.Fatalf("left: %+v", left)
	}
}

// With admin.tokens the buffer routes are not open: 401 without a token
// or with a wrong one; BufferClient sends its token.
func TestBufferRoutesNeedToken(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1/")
	cfg.Admin.Tokens = []AdminToken{{Name: "ops", Hash: "$plain$ops-secret"}}
	var calls atomic.Int32
	gw := startWith(t, cfg, Options{verifyToken: plainVerifier(&calls)})
	base := gw.g.AdminAddr().String()
	for _, r := range [][2]string{
		{"GET", "/v1/buffer/stats"}, {"GET", "/v1/buffer/events"}, {"GET", "/v1/buffer/events/x"},
		{"POST", "/v1/buffer/replay"}, {"POST", "/v1/buffer/purge"},
	} {
		if got := call(t, http.DefaultClient, r[0], "http://"+base+r[1]); got.code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", r[0], r[1], got.code)
		}
	}
	if _, err := NewBufferClient(base, ClientOptions{Token: "wrong"}).Stats(t.Context()); err == nil ||
		!strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "EDGEGATE_TOKEN") {
		t.Errorf("Stats with a wrong token: %v", err)
	}
	st, err := NewBufferClient(base, ClientOptions{Token: "ops-secret"}).Stats(t.Context())
	if err != nil || len(st.Queues) != 2 {
		t.Errorf("Stats with the token: %+v, %v", st, err)
	}
}
