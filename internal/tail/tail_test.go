package tail

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
)

// record is an encoded event of device dev with sequence number n.
func record(dev string, n int, data string) []byte {
	return cloudevent.Encode(&cloudevent.Event{
		ID: fmt.Sprintf("%s-%d", dev, n), Source: "/edgegate/gw/devices/" + dev, Type: "io.edgegate.device.telemetry",
		Subject: dev, DataContentType: "application/json", Data: []byte(data),
		Extensions: []cloudevent.Extension{{Name: cloudevent.ExtClientID, Value: cloudevent.String("client-" + dev)}},
	})
}

// add appends n events of dev, each to queue "uplink.cloud".
func add(tl *Tail, dev string, from, n int) {
	for i := from; i < from+n; i++ {
		tl.Add([]buffer.Record{{Queue: "uplink.cloud", Data: record(dev, i, fmt.Sprintf(`{"n":%d}`, i))}}, time.Now())
	}
}

// message is one Server-Sent Events message.
type message struct {
	id, event string
	data      map[string]any
}

type client struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
	msgs chan message
}

func open(t *testing.T, base, q string, header ...string) *client {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"?q="+url.QueryEscape(q), nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &client{t: t, resp: resp, r: bufio.NewReader(resp.Body), msgs: make(chan message, 1000)}
	go c.read()
	return c
}

func (c *client) read() {
	defer close(c.msgs)
	var m message
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if m.event != "" {
				c.msgs <- m
			}
			m = message{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			m.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			m.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &m.data); err != nil {
				panic(fmt.Sprintf("data %q: %v", line, err))
			}
		}
	}
}

// next returns the next message, failing after 5 s.
func (c *client) next() message {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatal("stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatal("no message within 5s")
	}
	return message{}
}

func subject(m message) string {
	e, _ := m.data["event"].(map[string]any)
	s, _ := e["subject"].(string)
	return s
}

func serve(t *testing.T, tl *Tail) (base string, stop func()) {
	done := make(chan struct{})
	srv := httptest.NewServer(tl.Handler(done))
	var once bool
	stop = func() {
		if !once {
			once = true
			close(done)
		}
	}
	t.Cleanup(func() { stop(); srv.Close() })
	return srv.URL, stop
}

// A stream opens with the last Backlog events, oldest first, each with
// its queues and the event as CloudEvents JSON, then follows new ones.
func TestBacklogThenLive(t *testing.T) {
	tl := New()
	add(tl, "a", 0, 30)
	both := record("b", 0, `{"x":1}`)
	tl.Add([]buffer.Record{{Queue: "uplink.cloud", Data: both}, {Queue: "uplink.backup", Data: both}}, time.Now())
	base, _ := serve(t, tl)
	c := open(t, base, "")
	for i := 11; i < 30; i++ {
		m := c.next()
		e := m.data["event"].(map[string]any)
		if m.event != "event" || e["id"] != fmt.Sprintf("a-%d", i) || m.id != fmt.Sprint(i) || m.data["seq"] != float64(i) {
			t.Fatalf("message %d: %+v", i, m)
		}
		if d := e["data"].(map[string]any); d["n"] != float64(i) {
			t.Fatalf("data %v", d)
		}
	}
	m := c.next()
	if subject(m) != "b" || fmt.Sprint(m.data["queues"]) != "[uplink.cloud uplink.backup]" {
		t.Fatalf("event routed twice: %+v", m)
	}
	add(tl, "c", 0, 1)
	if m := c.next(); subject(m) != "c" || m.id != "31" {
		t.Fatalf("live: %+v", m)
	}
}

// Only events that contain every word of the filter are sent: client id,
// subject, queue, data.
func TestFilter(t *testing.T) {
	tl := New()
	add(tl, "th-01", 0, 3)
	add(tl, "th-02", 0, 3)
	tl.Add([]buffer.Record{{Queue: "deadletter.cloud", Data: record("door", 7, `{"open":true}`)}}, time.Now())
	base, _ := serve(t, tl)
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"TH-02", []string{"th-02-0", "th-02-1", "th-02-2"}},
		{"client-th-01 n\":2", []string{"th-01-2"}},
		{"deadletter", []string{"door-7"}},
		{"open door", []string{"door-7"}},
	} {
		c := open(t, base, tt.q)
		for _, id := range tt.want {
			if m := c.next(); m.data["event"].(map[string]any)["id"] != id {
				t.Errorf("q=%q: got %v, want %s", tt.q, m.data["event"], id)
			}
		}
		add(tl, "zz", 100, 1) // matches none: nothing more is sent
		select {
		case m := <-c.msgs:
			t.Errorf("q=%q: unexpected %+v", tt.q, m)
		case <-time.After(2 * Interval):
		}
	}
}

// A burst sends only the most recent Burst events and says how many were
// skipped, counting those the ring overwrote; a large payload's data is
// left out with its size.
func TestRateLimitAndRing(t *testing.T) {
	tl := New()
	base, _ := serve(t, tl)
	c := open(t, base, "")
	add(tl, "x", 0, Size+44)
	m := c.next()
	if m.event != "skipped" || m.data["skipped"] != float64(Size+44-Burst) {
		t.Fatalf("skipped: %+v", m)
	}
	for i := Size + 44 - Burst; i < Size+44; i++ {
		if m := c.next(); m.data["event"].(map[string]any)["id"] != fmt.Sprintf("x-%d", i) {
			t.Fatalf("want x-%d, got %+v", i, m)
		}
	}
	big := `"` + strings.Repeat("y", MaxData) + `"`
	tl.Add([]buffer.Record{{Queue: "q", Data: record("big", 0, big)}}, time.Now())
	m = c.next()
	if e := m.data["event"].(map[string]any); e["data"] != nil || m.data["data_omitted"] != float64(len(big)) || e["datacontenttype"] != "application/json" {
		t.Fatalf("large data: %+v", m)
	}
}

// A client that reconnects with Last-Event-ID gets what it missed; the
// server's done ends every stream; more than MaxStreams are refused.
func TestResumeDoneAndLimit(t *testing.T) {
	tl := New()
	add(tl, "r", 0, 40)
	base, stop := serve(t, tl)
	c := open(t, base, "", "Last-Event-ID", "34")
	for i := 35; i < 40; i++ {
		if m := c.next(); m.id != fmt.Sprint(i) {
			t.Fatalf("resume: want %d, got %+v", i, m)
		}
	}
	for range MaxStreams - 1 {
		open(t, base, "")
	}
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream %d: %d, want 503", MaxStreams+1, resp.StatusCode)
	}
	resp, _ = http.Get(base + "?q=" + strings.Repeat("x", MaxFilter+1))
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("long filter: %d, want 400", resp.StatusCode)
	}
	stop()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return // ended
			}
		case <-deadline:
			t.Fatal("stream still open after done")
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	tl := New()
	recs := []buffer.Record{{Queue: "uplink.cloud", Data: record("a", 0, `{"t":21.5}`)}}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tl.Add(recs, now)
		}
	})
}

// Large events do not pile up: the ring keeps at most MaxBytes of record
// data (the newest append always), and a stream counts what it let go.
func TestByteBound(t *testing.T) {
	tl := New()
	big := `"` + strings.Repeat("b", 1<<20) + `"`
	data := record("big", 0, big)
	for range 10 {
		tl.Add([]buffer.Record{{Queue: "uplink.a", Data: data}, {Queue: "uplink.b", Data: data}}, time.Now()) // one event, two queues: counted once
	}
	tl.mu.Lock()
	held, kept := tl.held, tl.next-tl.first
	tl.mu.Unlock()
	if held > MaxBytes || kept != uint64(MaxBytes/len(data)) {
		t.Fatalf("held %d bytes in %d appends, want at most %d in %d", held, kept, MaxBytes, MaxBytes/len(data))
	}
	huge := record("huge", 0, `"`+strings.Repeat("h", MaxBytes)+`"`)
	tl.Add([]buffer.Record{{Queue: "q", Data: huge}}, time.Now())
	tl.mu.Lock()
	held, kept = tl.held, tl.next-tl.first
	tl.mu.Unlock()
	if kept != 1 || held != len(huge) {
		t.Fatalf("after one append over the bound: %d appends, %d bytes; want the newest alone", kept, held)
	}
	base, _ := serve(t, tl)
	c := open(t, base, "", "Last-Event-ID", "0")
	if m := c.next(); m.event != "skipped" || m.data["skipped"] != float64(9) { // it saw 0; 1-9 were let go
		t.Fatalf("resume after appends let go: %+v", m)
	}
	if m := c.next(); subject(m) != "huge" || m.data["data_omitted"] != float64(MaxBytes+2) {
		t.Fatalf("newest: %+v", m)
	}
}
