package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/uplink"
)

// BufferTool inspects and edits what the buffer holds: the admin API's
// /v1/buffer routes on a running gateway, and `edgegate buffer` on a
// stopped gateway's buffer (OpenBufferTool). It reads records as
// CloudEvents; the buffer itself knows only bytes.
//
// Its methods are safe for concurrent use; replays and purges run one at a
// time.
type BufferTool struct {
	buf     *buffer.Buffer
	cfg     buffer.Config
	uplinks []string // names, in configuration order; nil: not known (a bare directory)
	// configured: cfg is the gateway's (not OpenBufferDir's stand-in).
	configured bool
	mu         sync.Mutex
	close      func() error // offline: stops Run if started, closes the buffer
}

// ErrBadRequest marks a request that names something wrong (an unknown
// uplink, a replay without a destination): the admin API answers 400.
var ErrBadRequest = errors.New("bad request")

// ErrNotFound is returned by Show when no stored event has the id, and by
// every method for a queue that does not exist: the admin API answers 404.
var ErrNotFound = errors.New("not found")

// ErrBufferLocked and ErrBufferUnclean are OpenBufferTool's and
// OpenBufferDir's failures to open a buffer (see buffer.ErrLocked,
// buffer.ErrUnclean): a gateway has it open; it was not closed cleanly.
var (
	ErrBufferLocked  = buffer.ErrLocked
	ErrBufferUnclean = buffer.ErrUnclean
)

func badRequest(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
}

// bufferTool returns the tool over the running gateway's buffer.
func (g *Gateway) bufferTool() *BufferTool {
	t := &BufferTool{buf: g.buffer(), cfg: g.cfg.Buffer, configured: true}
	t.uplinks = g.uplinks.Load().names()
	return t
}

// OpenBufferTool opens the buffer of a stopped gateway that c configures:
// read-only unless write (nothing in the directory changes), or
// read-write for Replay and Purge, running the buffer until Close. It
// fails with buffer.ErrLocked while a gateway has it open (use the admin
// API then), and read-only with buffer.ErrUnclean after a crash. log may
// be nil.
func OpenBufferTool(c *Compiled, write bool, log *slog.Logger) (*BufferTool, error) {
	if c == nil {
		return nil, errors.New("gateway: no configuration")
	}
	t, err := openBufferTool(c.Config.Buffer, write, log)
	if err != nil {
		return nil, err
	}
	for _, u := range c.Config.Uplinks {
		t.uplinks = append(t.uplinks, u.Name)
	}
	return t, nil
}

// OpenBufferDir opens the buffer in dir read-only, without a
// configuration: Stats, List and Show work; Replay needs the uplinks and
// Purge a write, so both need OpenBufferTool.
func OpenBufferDir(dir string, log *slog.Logger) (*BufferTool, error) {
	cfg := buffer.DefaultConfig()
	cfg.Dir = dir
	cfg.MinFreeBytes = buffer.MinFreeFloor
	t, err := openBufferTool(cfg, false, log)
	if t != nil {
		t.configured = false
	}
	return t, err
}

func openBufferTool(cfg buffer.Config, write bool, log *slog.Logger) (*BufferTool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var opts []buffer.Option
	if !write {
		opts = append(opts, buffer.ReadOnly())
	}
	buf, err := buffer.Open(cfg, log, nil, opts...)
	if err != nil {
		return nil, err
	}
	t := &BufferTool{buf: buf, cfg: cfg, close: buf.Close, configured: true}
	if write {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- buf.Run(ctx) }()
		t.close = func() error {
			cancel()
			return errors.Join(<-done, buf.Close())
		}
	}
	return t, nil
}

// Close releases a tool from OpenBufferTool or OpenBufferDir (a running
// gateway's tool needs none).
func (t *BufferTool) Close() error {
	if t.close == nil {
		return nil
	}
	return t.close()
}

// Queue kinds, from the names the gateway gives its queues.
const (
	KindUplink     = "uplink"     // events waiting for an uplink
	KindDeadLetter = "deadletter" // events refused for good (by an uplink or a rule)
	KindRetained   = "retained"   // events an uplink delivered, kept for replay (buffer.retain)
)

// queueKind returns the kind of a queue and the uplink (or "rules") it
// belongs to.
func queueKind(name string) (kind, owner string) {
	if of, ok := buffer.IsRetained(name); ok {
		_, owner = queueKind(of)
		return KindRetained, owner
	}
	if u, ok := strings.CutPrefix(name, "uplink."); ok {
		return KindUplink, u
	}
	if u, ok := strings.CutPrefix(name, "deadletter."); ok {
		return KindDeadLetter, u
	}
	return "", ""
}

// BufferStats is what the buffer holds (GET /v1/buffer/stats).
type BufferStats struct {
	Dir      string        `json:"dir"`
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"`
	MaxBytes int64         `json:"max_bytes,omitempty"` // 0: not known (OpenBufferDir)
	Retain   string        `json:"retain,omitempty"`    // "0s": no history; "": not known
	DiskFree int64         `json:"disk_free_bytes"`
	Full     bool          `json:"full"`
	Queues   []QueueDetail `json:"queues"`
}

// QueueDetail describes one queue of the buffer.
type QueueDetail struct {
	Name string `json:"name"`
	// Kind is uplink, deadletter or retained; Uplink is the uplink the
	// queue feeds, whose dead letters or delivered events it holds
	// ("rules" for the rules' dead letters).
	Kind    string    `json:"kind,omitempty"`
	Uplink  string    `json:"uplink,omitempty"`
	Records int64     `json:"records"`
	Bytes   int64     `json:"bytes"`
	Oldest  time.Time `json:"oldest,omitzero"` // when its oldest event was stored
}

// Stats describes the buffer and every queue.
func (t *BufferTool) Stats() (BufferStats, error) {
	qs, err := t.buf.Queues()
	if err != nil {
		return BufferStats{}, err
	}
	s := t.buf.Stats()
	out := BufferStats{
		Dir: t.cfg.Dir, Records: s.Records, Bytes: s.Bytes, DiskFree: s.DiskFree, Full: s.Full,
		Queues: make([]QueueDetail, 0, len(qs)),
	}
	if t.configured {
		out.MaxBytes, out.Retain = int64(t.cfg.MaxBytes), t.cfg.Retain.String()
	}
	for _, q := range qs {
		kind, owner := queueKind(q.Name)
		out.Queues = append(out.Queues, QueueDetail{
			Name: q.Name, Kind: kind, Uplink: owner, Records: q.Records, Bytes: q.Bytes, Oldest: q.Oldest,
		})
	}
	return out, nil
}

// EventSummary is one stored event as `edgegate buffer ls` lists it.
type EventSummary struct {
	Queue  string    `json:"queue"`
	Seq    uint64    `json:"seq"`    // position in the queue
	Stored time.Time `json:"stored"` // when the gateway stored it (a dead letter: when it was dead-lettered)
	Size   int       `json:"size"`   // bytes in the buffer

	ID       string    `json:"id,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	Type     string    `json:"type,omitempty"`
	Source   string    `json:"source,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	Replayed bool      `json:"replayed,omitempty"`

	// The failure of a dead letter (the edgegateerror… extensions).
	Error     string `json:"error,omitempty"`
	ErrorCode int32  `json:"error_code,omitempty"`
	ErrorDest string `json:"error_dest,omitempty"`
	Attempts  int32  `json:"attempts,omitempty"`

	// Invalid says why the record is not an event (it is kept as it is).
	Invalid string `json:"invalid,omitempty"`
}

func summarize(queue string, e buffer.Entry, ev *cloudevent.Event, decodeErr error) EventSummary {
	s := EventSummary{Queue: queue, Seq: e.Seq, Stored: e.Appended.UTC(), Size: e.Size}
	if decodeErr != nil {
		s.Invalid = decodeErr.Error()
		return s
	}
	s.ID, s.Type, s.Source, s.Subject = ev.ID, ev.Type, ev.Source, ev.Subject
	if !ev.Time.IsZero() {
		s.Time = ev.Time.UTC()
	}
	if v, ok := ev.Extension(cloudevent.ExtReplayed); ok {
		s.Replayed = v.Bool()
	}
	if v, ok := ev.Extension(cloudevent.ExtError); ok {
		s.Error = v.String()
	}
	if v, ok := ev.Extension(cloudevent.ExtErrorCode); ok {
		s.ErrorCode = v.Int()
	}
	if v, ok := ev.Extension(cloudevent.ExtErrorDest); ok {
		s.ErrorDest = v.String()
	}
	if v, ok := ev.Extension(cloudevent.ExtAttempts); ok {
		s.Attempts = v.Int()
	}
	return s
}

// Filter selects stored events. Zero fields select everything.
type Filter struct {
	// Since and Until bound when the gateway stored an event: at or after
	// Since, before Until.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// ID, Type, Source and Subject must equal the event's attribute.
	ID      string `json:"id,omitempty"`
	Type    string `json:"type,omitempty"`
	Source  string `json:"source,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// attrs reports whether the filter looks at the event's attributes (and so
// needs it decoded).
func (f Filter) attrs() bool { return f.ID != "" || f.Type != "" || f.Source != "" || f.Subject != "" }

// quick rejects, without decoding, a record that cannot hold f.ID.
func (f Filter) quick(data []byte) bool {
	return f.ID == "" || bytes.Contains(data, []byte(f.ID))
}

func (f Filter) match(ev *cloudevent.Event) bool {
	return (f.ID == "" || ev.ID == f.ID) && (f.Type == "" || ev.Type == f.Type) &&
		(f.Source == "" || ev.Source == f.Source) && (f.Subject == "" || ev.Subject == f.Subject)
}

// ListRequest selects the events List returns.
type ListRequest struct {
	Filter
	// Queue limits the listing to one queue; "" lists every queue.
	Queue string `json:"queue,omitempty"`
	// After skips the events of Queue up to this seq (ListResult.Next).
	After uint64 `json:"after,omitempty"`
	// Limit caps the events listed (0: DefaultListLimit; at most
	// MaxListLimit).
	Limit int `json:"limit,omitempty"`
}

// Listing limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 10000
)

// ListResult is one page of a listing.
type ListResult struct {
	Events []EventSummary `json:"events"`
	// More says the limit stopped the listing; Next is then the seq to
	// pass as After (with the last event's queue) to go on.
	More bool   `json:"more"`
	Next uint64 `json:"next,omitempty"`
}

// pageSize is how many records one read of a walk takes.
const pageSize = 256

// List lists the stored events req selects, queue by queue in name order,
// oldest first in each.
func (t *BufferTool) List(req ListRequest) (ListResult, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	if limit > MaxListLimit {
		return ListResult{}, badRequest("limit %d: at most %d", limit, MaxListLimit)
	}
	queues, err := t.queueNames(req.Queue)
	if err != nil {
		return ListResult{}, err
	}
	res := ListResult{Events: []EventSummary{}}
	for _, q := range queues {
		from := uint64(0)
		if q == req.Queue {
			from = req.After + 1
		}
		err := t.walk(q, from, 0, req.Filter, func(e buffer.Entry, ev *cloudevent.Event, derr error) bool {
			if len(res.Events) == limit {
				res.More, res.Next = true, res.Events[limit-1].Seq
				return false
			}
			res.Events = append(res.Events, summarize(q, e, ev, derr))
			return true
		})
		if err != nil || res.More {
			return res, err
		}
	}
	return res, nil
}

// queueNames returns queue, checked to exist, or every queue's name.
func (t *BufferTool) queueNames(queue string) ([]string, error) {
	qs, err := t.buf.Queues()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, q := range qs {
		if queue == "" || q.Name == queue {
			names = append(names, q.Name)
		}
	}
	if queue != "" && len(names) == 0 {
		return nil, fmt.Errorf("%w: no queue %q", ErrNotFound, queue)
	}
	return names, nil
}

// walk calls fn, oldest first, with the records of queue from seq from (and
// below before, if not 0) that f selects, decoded; a record that does not
// decode comes with its error (and ev nil) unless f looks at attributes.
// fn returns false to stop.
func (t *BufferTool) walk(queue string, from, before uint64, f Filter,
	fn func(e buffer.Entry, ev *cloudevent.Event, err error) bool) error {
	for {
		page, next, err := t.buf.List(queue, buffer.ListOptions{
			From: from, Before: before, Since: f.Since, Until: f.Until, Limit: pageSize, MaxBytes: 1 << 20,
		})
		if errors.Is(err, buffer.ErrNoQueue) {
			return fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		if err != nil {
			return err
		}
		for _, e := range page {
			if !f.quick(e.Data) {
				continue
			}
			var ev cloudevent.Event
			derr := cloudevent.Decode(e.Data, &ev)
			if derr != nil && f.attrs() || derr == nil && !f.match(&ev) {
				continue
			}
			evp := &ev
			if derr != nil {
				evp = nil
			}
			if !fn(e, evp, derr) {
				return nil
			}
		}
		if next == 0 {
			return nil
		}
		from = next
	}
}

// StoredEvent is one stored event, as Show finds it.
type StoredEvent struct {
	Summary EventSummary
	// JSON is the event in the CloudEvents JSON format, as an uplink would
	// send it (with its failure extensions, if it is a dead letter).
	JSON []byte
}

// Show finds the event with id, in queue or in any queue. An event kept in
// several queues (routed to two uplinks, say) is ambiguous without queue;
// in one queue, the newest copy wins.
func (t *BufferTool) Show(id, queue string) (StoredEvent, error) {
	if id == "" {
		return StoredEvent{}, badRequest("an event id is needed")
	}
	queues, err := t.queueNames(queue)
	if err != nil {
		return StoredEvent{}, err
	}
	var found []StoredEvent
	for _, q := range queues {
		var last *StoredEvent
		err := t.walk(q, 0, 0, Filter{ID: id}, func(e buffer.Entry, ev *cloudevent.Event, _ error) bool {
			last = &StoredEvent{Summary: summarize(q, e, ev, nil), JSON: cloudevent.AppendJSON(nil, ev)}
			return true
		})
		if err != nil {
			return StoredEvent{}, err
		}
		if last != nil {
			found = append(found, *last)
		}
	}
	switch len(found) {
	case 0:
		return StoredEvent{}, fmt.Errorf("%w: no event %q", ErrNotFound, id)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.Summary.Queue
	}
	return StoredEvent{}, badRequest("event %q is in queues %s: name one", id, strings.Join(names, ", "))
}

// ReplayRequest says what to send again and where.
type ReplayRequest struct {
	Filter
	// Queue is where the events are: a dead-letter queue, an uplink's
	// retained history, or another uplink's queue. "" means the retained
	// history of To.
	Queue string `json:"queue,omitempty"`
	// To is the uplink to send them to; "" means the uplink the queue
	// belongs to (deadletter.X, retained.uplink.X: X).
	To string `json:"to,omitempty"`
	// Limit caps the events replayed (0: no limit).
	Limit int `json:"limit,omitempty"`
	// Keep leaves replayed dead letters (and a removed uplink's backlog)
	// in their queue; by default they move (a replay that fails
	// dead-letters them afresh).
	Keep bool `json:"keep,omitempty"`
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Queue    string `json:"queue"`
	To       string `json:"to"`
	Replayed int    `json:"replayed"` // events queued for To
	Removed  int    `json:"removed"`  // dead letters (or a removed uplink's backlog) removed from Queue
	Skipped  int    `json:"skipped"`  // records that are not events, left in place
}

// Replay queues the events req selects for an uplink again, oldest first,
// marked replayed=true and without the failure extensions of a dead
// letter (a new failure is recorded afresh). It appends them to the
// uplink's queue, behind what is waiting there, and returns once they
// are stored; the uplink's forwarder delivers them. Dead letters and the
// backlog of a removed uplink (its queue, which no forwarder reads) move
// (unless Keep); retained or still queued events are copied. Only what
// is stored when Replay starts is looked at.
func (t *BufferTool) Replay(ctx context.Context, req ReplayRequest) (ReplayResult, error) {
	if t.uplinks == nil {
		return ReplayResult{}, badRequest("replay needs the gateway's configuration (its uplinks)")
	}
	if req.Limit < 0 {
		return ReplayResult{}, badRequest("limit must be ≥ 0")
	}
	if req.Queue == "" && req.To == "" {
		return ReplayResult{}, badRequest("name the queue to replay, or the uplink to replay retained events to")
	}
	if req.Queue == "" {
		req.Queue = buffer.RetainedName(queueName(req.To))
	}
	kind, owner := queueKind(req.Queue)
	if req.To == "" {
		if kind == KindUplink || !slices.Contains(t.uplinks, owner) {
			return ReplayResult{}, badRequest("queue %q: name the uplink to replay to", req.Queue)
		}
		req.To = owner
	}
	if !slices.Contains(t.uplinks, req.To) {
		return ReplayResult{}, badRequest("no uplink %q (uplinks: %s)", req.To, strings.Join(t.uplinks, ", "))
	}
	dst := queueName(req.To)
	if req.Queue == dst {
		return ReplayResult{}, badRequest("the events in %q are waiting for %s already", req.Queue, req.To)
	}
	// Dead letters move, and so does the backlog of a removed uplink (its
	// queue feeds nothing now); other events are copied.
	removed := kind == KindUplink && !slices.Contains(t.uplinks, owner)
	move := (kind == KindDeadLetter || removed) && !req.Keep
	t.mu.Lock()
	defer t.mu.Unlock()
	end, err := t.queueEnd(req.Queue)
	if err != nil {
		return ReplayResult{}, err
	}
	res := ReplayResult{Queue: req.Queue, To: req.To}
	var recs []buffer.Record
	var seqs []uint64
	var size int
	// flush stores a page of replayed events, then removes the moved ones.
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		if err := t.buf.Append(ctx, recs, true); err != nil {
			return fmt.Errorf("replay to %s after %d events: %w", req.To, res.Replayed, err)
		}
		res.Replayed += len(recs)
		if move {
			n, err := t.buf.Delete(req.Queue, seqs)
			res.Removed += n
			if err != nil {
				return fmt.Errorf("remove %d replayed dead letters from %s (they are in %s's queue; they stay here too): %w", len(seqs), req.Queue, req.To, err)
			}
		}
		recs, seqs, size = recs[:0], seqs[:0], 0
		return nil
	}
	var ferr error
	err = t.walk(req.Queue, 0, end, req.Filter, func(e buffer.Entry, ev *cloudevent.Event, derr error) bool {
		if derr != nil {
			res.Skipped++
			return true
		}
		uplink.ForReplay(ev)
		data := cloudevent.Encode(ev)
		recs = append(recs, buffer.Record{Queue: dst, Data: data})
		seqs = append(seqs, e.Seq)
		size += len(data)
		if len(recs) >= pageSize || size >= 1<<20 {
			if ferr = flush(); ferr != nil {
				return false
			}
		}
		return req.Limit == 0 || res.Replayed+len(recs) < req.Limit
	})
	if err == nil {
		err = ferr
	}
	if err == nil {
		err = flush()
	}
	return res, err
}

// queueEnd returns the seq past queue's last stored record, so that a walk
// ignores what is appended while it runs.
func (t *BufferTool) queueEnd(queue string) (uint64, error) {
	qs, err := t.buf.Queues()
	if err != nil {
		return 0, err
	}
	for _, q := range qs {
		if q.Name == queue {
			return max(q.Next, 1), nil
		}
	}
	return 0, fmt.Errorf("%w: no queue %q", ErrNotFound, queue)
}

// PurgeRequest says what to remove from one queue: the events Filter
// selects, but at least one of Before, ID, Type, Source, Subject must be
// set, or All.
type PurgeRequest struct {
	Queue string `json:"queue"`
	// Before removes events stored before this time (Filter.Until).
	Before time.Time `json:"before,omitzero"`
	Filter
	All bool `json:"all,omitempty"`
}

// PurgeResult says what a purge removed.
type PurgeResult struct {
	Queue  string `json:"queue"`
	Purged int    `json:"purged"`
}

// Purge removes from req.Queue the events req names, and nothing else.
// Events the uplink is sending at that moment are still delivered.
func (t *BufferTool) Purge(req PurgeRequest) (PurgeResult, error) {
	if req.Queue == "" {
		return PurgeResult{}, badRequest("name the queue to purge")
	}
	f := req.Filter
	if !req.Before.IsZero() {
		if !f.Until.IsZero() && f.Until.Before(req.Before) {
			req.Before = f.Until
		}
		f.Until = req.Before
	}
	if f == (Filter{}) && !req.All {
		return PurgeResult{}, badRequest("name what to remove from %q (before, id, type, source, subject), or all", req.Queue)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	end, err := t.queueEnd(req.Queue)
	if err != nil {
		return PurgeResult{}, err
	}
	res := PurgeResult{Queue: req.Queue}
	var seqs []uint64
	var derr error
	flush := func() {
		n, err := t.buf.Delete(req.Queue, seqs)
		res.Purged += n
		derr = err
		seqs = seqs[:0]
	}
	err = t.walk(req.Queue, 0, end, f, func(e buffer.Entry, _ *cloudevent.Event, _ error) bool {
		seqs = append(seqs, e.Seq)
		if len(seqs) == pageSize {
			flush()
		}
		return derr == nil
	})
	if err == nil && derr == nil && len(seqs) > 0 {
		flush()
	}
	if err == nil {
		err = derr
	}
	return res, err
}
