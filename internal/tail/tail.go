package tail

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
)

// Limits of the ring and of each stream.
const (
	// Size is how many appends the ring keeps at most.
	Size = 256
	// MaxBytes bounds the record data the ring keeps (device payloads may
	// be up to max_payload_bytes each): beyond it the oldest appends are
	// let go, the newest is always kept.
	MaxBytes = 4 << 20
	// Interval is how often a stream reads the ring at most.
	Interval = 250 * time.Millisecond
	// Burst is how many events a stream sends per read at most (with
	// Interval: 20 events/s), the most recent that match.
	Burst = 5
	// Backlog is how many recent events that match a stream sends when it
	// opens.
	Backlog = 20
	// MaxStreams bounds the streams open at once; more are refused 503.
	MaxStreams = 8
	// MaxData is the largest data a stream sends with an event; larger
	// data is left out and its size given as data_omitted.
	MaxData = 1024
	// MaxFilter bounds the filter's length in bytes.
	MaxFilter = 256

	heartbeat    = 15 * time.Second
	writeTimeout = 10 * time.Second
)

// slot is one Add: the records of one append.
type slot struct {
	at   time.Time
	recs []buffer.Record
	size int // bytes of distinct record data
}

// Tail is the ring of the most recent appends. The zero value is not
// usable; call New.
type Tail struct {
	mu    sync.Mutex
	ring  [Size]slot
	first uint64        // sequence number of the oldest append kept
	next  uint64        // sequence number of the next Add; its slot is next%Size
	held  int           // bytes of the slots from first to next
	wake  chan struct{} // closed by the next Add; nil when no stream waits

	streams atomic.Int32
}

// New returns an empty ring.
func New() *Tail { return &Tail{} }

// Add keeps recs, appended to the buffer at at, as the newest entry. It
// keeps the slice and the records' data by reference: neither may be
// modified afterwards. It never blocks on a stream.
func (t *Tail) Add(recs []buffer.Record, at time.Time) {
	if len(recs) == 0 {
		return
	}
	size := 0
	for i, r := range recs {
		if i == 0 || !sameData(r.Data, recs[i-1].Data) {
			size += len(r.Data)
		}
	}
	t.mu.Lock()
	if t.next-t.first == Size {
		t.dropOldest()
	}
	t.ring[t.next%Size] = slot{at: at, recs: recs, size: size}
	t.next++
	t.held += size
	for t.held > MaxBytes && t.next-t.first > 1 {
		t.dropOldest()
	}
	if t.wake != nil {
		close(t.wake)
		t.wake = nil
	}
	t.mu.Unlock()
}

// dropOldest lets the oldest append go. The caller holds mu.
func (t *Tail) dropOldest() {
	s := &t.ring[t.first%Size]
	t.held -= s.size
	*s = slot{}
	t.first++
}

// read appends the entries from sequence number from on to dst. lost
// counts those the ring let go before they were read.
func (t *Tail) read(from uint64, dst []slot) (out []slot, next, lost uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	from = min(from, t.next)
	if from < t.first {
		lost = t.first - from
		from = t.first
	}
	for s := from; s < t.next; s++ {
		dst = append(dst, t.ring[s%Size])
	}
	return dst, t.next, lost
}

// after returns a channel that is closed once an entry with sequence
// number seq or later exists.
func (t *Tail) after(seq uint64) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next > seq {
		c := make(chan struct{})
		close(c)
		return c
	}
	if t.wake == nil {
		t.wake = make(chan struct{})
	}
	return t.wake
}

// Handler serves the stream (Serve) until done is closed, which the
// server closes when it shuts down.
func (t *Tail) Handler(done <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Serve(w, r, done) })
}

// Serve streams the appends as Server-Sent Events: first the last
// Backlog events that match the filter (query parameter q), or, when the
// request has a Last-Event-ID (a reconnect), every entry after it that
// the ring still holds, the others counted as skipped; then each new
// event that matches, at most Burst per Interval. Each
// message is
//
//	id: <sequence number of the append>
//	event: event
//	data: {"seq":N,"stored":"<RFC 3339>","queues":["uplink.cloud"],"event":{<CloudEvents JSON>}}
//
// with "data_omitted":<bytes> in place of the event's data when it is
// larger than MaxData. When events were not sent (over the rate limit, or
// let go by the ring before the stream read them, whether they would
// have matched or not) a message "event: skipped" with data
// {"skipped":N} comes before the events of that read. A comment line is
// sent every 15 s of silence.
//
// The filter is words separated by spaces; an event matches when each
// word occurs, ignoring case, in its id, type, source, subject, queues,
// string extension values (client id, topic, user…) or JSON data.
func (t *Tail) Serve(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
	q := r.URL.Query().Get("q")
	if len(q) > MaxFilter {
		http.Error(w, "filter q longer than "+strconv.Itoa(MaxFilter)+" bytes", http.StatusBadRequest)
		return
	}
	if t.streams.Add(1) > MaxStreams {
		t.streams.Add(-1)
		http.Error(w, "too many live tails open", http.StatusServiceUnavailable)
		return
	}
	defer t.streams.Add(-1)
	s := &stream{w: w, rc: http.NewResponseController(w), filter: parseFilter(q)}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold the stream back
	w.WriteHeader(http.StatusOK)

	t.mu.Lock()
	head, first := t.next, t.first
	t.mu.Unlock()
	from, limit, resume := first, Backlog, false
	if id, err := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && id < head {
		// A reconnect: every entry after the last one it saw.
		from, limit, resume = id+1, Size, true
	}
	buf, next, lost := t.read(from, nil)
	// Older events are not skipped ones, unless a reconnect asked for them.
	s.send(buf, from+lost, limit, lost, resume)
	if !s.flush() {
		return
	}
	beat := time.NewTimer(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-t.after(next):
		case <-beat.C:
			s.write(": keep-alive\n\n")
			if !s.flush() {
				return
			}
			beat.Reset(heartbeat)
			continue
		case <-r.Context().Done():
			return
		case <-done:
			return
		}
		// Gather what arrives within one interval into one read.
		pause := time.NewTimer(Interval)
		select {
		case <-pause.C:
		case <-r.Context().Done():
			pause.Stop()
			return
		case <-done:
			pause.Stop()
			return
		}
		from := next
		buf, next, lost = t.read(next, buf[:0])
		s.send(buf, from+lost, Burst, lost, true)
		if !s.flush() {
			return
		}
		beat.Reset(heartbeat)
	}
}

// stream is one client's stream.
type stream struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	filter [][]byte
	err    bool
	line   []byte // reused message buffer
	hay    []byte // reused filter text
}

// send writes, if report, a skipped message for the entries lost and the
// events that match but exceed limit, then the last limit events of slots
// (the first at sequence number seq) that match the filter.
func (s *stream) send(slots []slot, seq uint64, limit int, lost uint64, report bool) {
	type match struct {
		seq   uint64
		at    time.Time
		e     cloudevent.Event
		group []buffer.Record
	}
	var matches []match
	skipped := lost
	for i, sl := range slots {
		for g := range groups(sl.recs) {
			var e cloudevent.Event
			if err := cloudevent.Decode(g[0].Data, &e); err != nil || !s.matches(&e, g) {
				continue
			}
			matches = append(matches, match{seq + uint64(i), sl.at, e, g})
		}
	}
	if over := len(matches) - limit; over > 0 {
		skipped += uint64(over)
		matches = matches[over:]
	}
	// The skipped events came before the ones sent: say so first.
	if skipped > 0 && report {
		s.write("event: skipped\ndata: {\"skipped\":" + strconv.FormatUint(skipped, 10) + "}\n\n")
	}
	for _, m := range matches {
		s.event(m.seq, m.at, &m.e, m.group)
	}
}

// groups yields the records of one append grouped by event: an event
// routed to several queues is one record data appended once per queue.
func groups(recs []buffer.Record) func(yield func([]buffer.Record) bool) {
	return func(yield func([]buffer.Record) bool) {
		for i := 0; i < len(recs); {
			j := i + 1
			for j < len(recs) && sameData(recs[j].Data, recs[i].Data) {
				j++
			}
			if !yield(recs[i:j]) {
				return
			}
			i = j
		}
	}
}

func sameData(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// event writes one event message.
func (s *stream) event(seq uint64, at time.Time, e *cloudevent.Event, group []buffer.Record) {
	b := append(s.line[:0], "id: "...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, "\nevent: event\ndata: {\"seq\":"...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"stored":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","queues":[`...)
	for i, r := range group {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r.Queue)
	}
	b = append(b, `],"event":`...)
	omitted := 0
	if len(e.Data) > MaxData {
		omitted = len(e.Data)
		e.Data, e.DataBase64 = nil, false
	}
	b = cloudevent.AppendJSON(b, e)
	if omitted > 0 {
		b = append(b, `,"data_omitted":`...)
		b = strconv.AppendInt(b, int64(omitted), 10)
	}
	b = append(b, "}\n\n"...)
	s.line = b
	s.writeBytes(b)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// parseFilter splits q into lower-case words.
func parseFilter(q string) [][]byte {
	var words [][]byte
	for _, f := range strings.Fields(strings.ToLower(q)) {
		words = append(words, []byte(f))
	}
	return words
}

// matches reports whether every filter word occurs in the event's text.
func (s *stream) matches(e *cloudevent.Event, group []buffer.Record) bool {
	if len(s.filter) == 0 {
		return true
	}
	h := s.hay[:0]
	add := func(v string) { h = append(append(h, v...), '\n') }
	add(e.ID)
	add(e.Type)
	add(e.Source)
	add(e.Subject)
	for _, r := range group {
		add(r.Queue)
	}
	for _, x := range e.Extensions {
		if x.Value.Kind() == cloudevent.KindString {
			add(x.Value.Str())
		}
	}
	if !e.DataBase64 && len(e.Data) <= MaxData {
		h = append(h, e.Data...)
	}
	h = bytes.ToLower(h)
	s.hay = h
	for _, w := range s.filter {
		if !bytes.Contains(h, w) {
			return false
		}
	}
	return true
}

func (s *stream) write(msg string) { s.writeBytes([]byte(msg)) }

func (s *stream) writeBytes(b []byte) {
	if s.err {
		return
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // not every writer has deadlines
	if _, err := s.w.Write(b); err != nil {
		s.err = true
	}
}

// flush sends what was written; false when the client is gone.
func (s *stream) flush() bool {
	if s.err {
		return false
	}
	if err := s.rc.Flush(); err != nil {
		s.err = true
	}
	return !s.err
}
