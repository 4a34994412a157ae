package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edgegate/edgegate/gateway"
)

// bufferCommand is one subcommand of `edgegate buffer`.
type bufferCommand struct {
	name     string
	synopsis string // arguments, for the usage
	help     string
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// bufferCommands is the `edgegate buffer` group, in usage order. A new
// subcommand is one more entry.
func bufferCommands() []bufferCommand {
	return append([]bufferCommand{
		{"stats", "", "events, bytes and the oldest event per queue", cmdBufferStats},
		{"ls", "[--queue Q] [filters] [--limit N]", "list stored events, with the failure of dead letters", cmdBufferList},
		{"show", "ID [--queue Q]", "print one stored event as CloudEvents JSON", cmdBufferShow},
		{"replay", "--queue Q | --to UPLINK [--since T] [filters]", "send events again to an uplink, marked replayed", cmdBufferReplay},
		{"purge", "--queue Q (--before T | --id ID | --all) [filters]", "remove what is named from a queue, nothing else", cmdBufferPurge},
	}, repairCommands()...)
}

const bufferUsageHead = `Usage: edgegate buffer COMMAND [flags]

Inspect and replay what the gateway's buffer holds: the events waiting for
each uplink (queue uplink.NAME), the dead letters (deadletter.NAME,
deadletter.rules) and, with buffer.retain, the events each uplink already
received (retained.uplink.NAME).

On a running gateway the commands use its admin API (--admin, default
http://127.0.0.1:8080; --token or EDGEGATE_TOKEN when it has admin.tokens,
--cacert for an https one signed by a private CA).
On a stopped gateway they open the buffer directly: --config FILE (every
command), or --dir DIR (stats, ls, show). Reading opens it read-only.

Commands:
`

const bufferUsageTail = `
Times (--since, --until, --before) are when the gateway stored an event (a
dead letter: when it was dead-lettered): RFC 3339 (2026-11-23T03:41:07Z),
a local date and time (2026-11-23 03:41, 2026-11-23), or a duration ago
(90m, 2h).

Run "edgegate buffer COMMAND -h" for the flags of a command.
`

func bufferUsage(w io.Writer) {
	fmt.Fprint(w, bufferUsageHead)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range bufferCommands() {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.synopsis, c.help)
	}
	tw.Flush()
	fmt.Fprint(w, bufferUsageTail)
}

// cmdBuffer runs `edgegate buffer COMMAND`.
func cmdBuffer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		bufferUsage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		bufferUsage(stdout)
		return nil
	}
	for _, c := range bufferCommands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil || errors.Is(err, flag.ErrHelp) || err == errUsage:
			return err
		case errors.Is(err, errUsage): // a usage error with its message
			fmt.Fprintf(stderr, "edgegate buffer %s: %s\n", c.name, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
			return errUsage
		}
		return fmt.Errorf("%s: %w", c.name, err)
	}
	fmt.Fprintf(stderr, "edgegate buffer: unknown command %q\n\n", args[0])
	bufferUsage(stderr)
	return errUsage
}

// bufferAPI is what the subcommands need: the admin API of a running
// gateway (gateway.BufferClient) or the buffer of a stopped one
// (localBuffer).
type bufferAPI interface {
	Stats(ctx context.Context) (gateway.BufferStats, error)
	List(ctx context.Context, req gateway.ListRequest) (gateway.ListResult, error)
	Show(ctx context.Context, id, queue string) ([]byte, error)
	Replay(ctx context.Context, req gateway.ReplayRequest) (gateway.ReplayResult, error)
	Purge(ctx context.Context, req gateway.PurgeRequest) (gateway.PurgeResult, error)
	Close() error
}

// target holds the flags that choose the buffer a subcommand works on.
type target struct {
	admin, token, cacert, config, dir string
}

const defaultAdmin = "http://127.0.0.1:8080"

func (t *target) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.admin, "admin", "", "admin API of the running gateway (default "+defaultAdmin+")")
	fs.StringVar(&t.token, "token", "", "bearer token for the admin API (default $EDGEGATE_TOKEN)")
	fs.StringVar(&t.cacert, "cacert", "", "PEM `file` of the CA that signed an https admin API's certificate (default: the system's)")
	fs.StringVar(&t.config, "config", "", "stopped gateway: open the buffer this configuration names")
	fs.StringVar(&t.dir, "dir", "", "stopped gateway: open the buffer in this directory, read-only")
}

// open returns the API the flags name: the admin API unless --config or
// --dir is given. write opens a stopped gateway's buffer read-write.
func (t *target) open(write bool) (bufferAPI, error) {
	switch {
	case t.config != "" && t.dir != "":
		return nil, usageError("--config and --dir: give one")
	case (t.config != "" || t.dir != "") && t.admin != "":
		return nil, usageError("--admin is for a running gateway, --config and --dir for a stopped one: give one")
	case t.config == "" && t.dir == "":
		base := t.admin
		if base == "" {
			base = defaultAdmin
		}
		opts := gateway.ClientOptions{Token: t.token}
		if opts.Token == "" {
			opts.Token = os.Getenv("EDGEGATE_TOKEN")
		}
		if t.cacert != "" {
			pem, err := os.ReadFile(t.cacert)
			if err != nil {
				return nil, fmt.Errorf("--cacert: %w", err)
			}
			opts.RootCAs = x509.NewCertPool()
			if !opts.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", t.cacert)
			}
		}
		return gateway.NewBufferClient(base, opts), nil
	case t.dir != "":
		if write {
			return nil, usageError("this command writes: it needs --config (the gateway's buffer settings and uplinks), not --dir")
		}
		tool, err := gateway.OpenBufferDir(t.dir, nil)
		return explainOpen(tool, err, t.dir, "")
	}
	c, err := gateway.LoadFile(t.config)
	if err != nil {
		return nil, err
	}
	dir := c.Config.Buffer.Dir
	if write {
		if err := sameOwner(dir); err != nil {
			return nil, err
		}
	}
	tool, err := gateway.OpenBufferTool(c, write, nil)
	admin := ""
	if l := c.Config.Admin.Listen; l != "" {
		admin = adminURL(l, c.Config.Admin.TLS.CertFile != "")
	}
	return explainOpen(tool, err, dir, admin)
}

// explainOpen turns the buffer's open errors into what to do about them.
func explainOpen(tool *gateway.BufferTool, err error, dir, admin string) (bufferAPI, error) {
	switch {
	case err == nil:
		return localBuffer{tool}, nil
	case errors.Is(err, gateway.ErrBufferLocked):
		use := "--admin URL"
		if admin != "" {
			use = "--admin " + admin
		}
		return nil, fmt.Errorf("%v\na gateway is running on this buffer: use its admin API (%s) instead of --config/--dir", err, use)
	case errors.Is(err, gateway.ErrBufferUnclean):
		return nil, fmt.Errorf("%v\nthe gateway stopped without closing the buffer (a crash, kill -9, power loss): start it once, or run a command that writes (replay, purge) with --config as the user that owns %s", err, dir)
	}
	return nil, err
}

// adminURL is the URL of an admin.listen address as seen from this host.
func adminURL(listen string, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, port)
}

// sameOwner refuses to write into dir as a user other than its owner:
// files Badger creates would belong to us (root, under sudo), and the
// gateway's service user could no longer open its own buffer.
func sameOwner(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("buffer %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); uint32(uid) != st.Uid {
		return fmt.Errorf("buffer %s belongs to uid %d, and this command would create files in it as uid %d: run it as the owner (sudo -u <user> edgegate …)", dir, st.Uid, uid)
	}
	return nil
}

// usageError is a flag problem: exit status 2.
func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// parseFlags parses args with fs, allowing positional arguments between
// flags (show ID --queue Q), and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newBufferFlags returns the flag set of `edgegate buffer NAME` with the
// target flags.
func newBufferFlags(name, synopsis, help string, stderr io.Writer, t *target) *flag.FlagSet {
	fs := flag.NewFlagSet("buffer "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: edgegate buffer %s %s\n\n%s\n\nFlags:\n", name, synopsis, help)
		fs.PrintDefaults()
	}
	t.flags(fs)
	return fs
}

// filterFlags binds the event filters.
type filterFlags struct {
	since, until, id, typ, source, subject string
}

func (f *filterFlags) bind(fs *flag.FlagSet, until bool) {
	fs.StringVar(&f.since, "since", "", "only events stored at or after this `time`")
	if until {
		fs.StringVar(&f.until, "until", "", "only events stored before this `time`")
	}
	fs.StringVar(&f.id, "id", "", "only the event with this id")
	fs.StringVar(&f.typ, "type", "", "only events of this type")
	fs.StringVar(&f.source, "source", "", "only events from this source")
	fs.StringVar(&f.subject, "subject", "", "only events with this subject")
}

func (f *filterFlags) filter(now time.Time) (gateway.Filter, error) {
	out := gateway.Filter{ID: f.id, Type: f.typ, Source: f.source, Subject: f.subject}
	var err error
	if out.Since, err = parseTimeFlag("since", f.since, now); err != nil {
		return out, err
	}
	out.Until, err = parseTimeFlag("until", f.until, now)
	return out, err
}

func parseTimeFlag(name, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(s, now)
	if err != nil {
		return t, usageError("--%s: %v", name, err)
	}
	return t, nil
}

// parseTime reads a time given on the command line: RFC 3339, a local
// date and time without zone (2006-01-02 15:04[:05], also with a T), a
// local date (midnight), or a positive duration meaning that long before
// now.
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: a duration ago must be positive", s)
		}
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 (2026-11-23T03:41:07Z), a local 2026-11-23 03:41, a date, or a duration ago (90m)", s)
}

func cmdBufferStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var t target
	fs := newBufferFlags("stats", "[--json]", "Events, bytes and the oldest event per queue.", stderr, &t)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	api, err := t.open(false)
	if err != nil {
		return err
	}
	defer api.Close()
	st, err := api.Stats(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, st)
	}
	fmt.Fprintf(stdout, "buffer %s: %d events, %s", st.Dir, st.Records, humanBytes(st.Bytes))
	switch {
	case st.MaxBytes == 0: // a bare directory: the limits are the configuration's
	case st.Retain == "0s":
		fmt.Fprintf(stdout, " of %s (no history)", humanBytes(st.MaxBytes))
	default:
		fmt.Fprintf(stdout, " of %s (retain %s)", humanBytes(st.MaxBytes), st.Retain)
	}
	fmt.Fprintf(stdout, ", %s free on disk", humanBytes(st.DiskFree))
	if st.Full {
		fmt.Fprint(stdout, ", FULL")
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tKIND\tUPLINK\tEVENTS\tBYTES\tOLDEST")
	now := time.Now()
	for _, q := range st.Queues {
		oldest := "-"
		if !q.Oldest.IsZero() {
			oldest = fmt.Sprintf("%s (%s ago)", q.Oldest.UTC().Format(time.RFC3339), now.Sub(q.Oldest).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", q.Name, dash(q.Kind), dash(q.Uplink), q.Records, q.Bytes, oldest)
	}
	return tw.Flush()
}

func cmdBufferList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var t target
	var ff filterFlags
	fs := newBufferFlags("ls", "[--queue Q] [filters] [--limit N] [--json]",
		"Lists stored events oldest first, queue by queue: where, when stored, id, type,\nsource, size, and for dead letters the failure (HTTP status, text).", stderr, &t)
	queue := fs.String("queue", "", "only this queue (default: every queue)")
	ff.bind(fs, true)
	after := fs.Uint64("after", 0, "with --queue: only events after this position (SEQ)")
	limit := fs.Int("limit", 50, "at most this many events")
	asJSON := fs.Bool("json", false, "print one JSON object per event")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	api, err := t.open(false)
	if err != nil {
		return err
	}
	defer api.Close()
	res, err := api.List(ctx, gateway.ListRequest{Filter: f, Queue: *queue, After: *after, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range res.Events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
	} else {
		printEvents(stdout, res.Events)
	}
	if res.More {
		last := res.Events[len(res.Events)-1]
		fmt.Fprintf(stderr, "more events: --queue %s --after %d lists the next ones\n", last.Queue, res.Next)
	}
	return nil
}

// printEvents prints event summaries as a table.
func printEvents(w io.Writer, events []gateway.EventSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSEQ\tSTORED\tID\tTYPE\tSOURCE\tSIZE\tERROR")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Queue, e.Seq, e.Stored.UTC().Format(time.RFC3339),
			dash(e.ID), dash(e.Type), dash(e.Source), e.Size, failure(e))
	}
	tw.Flush()
}

// failure is the table's text for a dead letter's failure: who refused it,
// how, after how many attempts.
func failure(e gateway.EventSummary) string {
	if e.Invalid != "" {
		return "not an event: " + e.Invalid
	}
	if e.Error == "" && e.ErrorDest == "" {
		if e.Replayed {
			return "- (replayed)"
		}
		return "-"
	}
	var b strings.Builder
	if e.ErrorCode != 0 {
		fmt.Fprintf(&b, "%d ", e.ErrorCode)
	}
	if e.ErrorDest != "" {
		fmt.Fprintf(&b, "from %s ", e.ErrorDest)
	}
	if e.Attempts > 0 {
		fmt.Fprintf(&b, "after %d attempt%s", e.Attempts, plural(int(e.Attempts)))
	}
	msg := strings.Join(strings.Fields(e.Error), " ")
	if len(msg) > 120 {
		msg = msg[:120] + "…"
	}
	if msg != "" {
		fmt.Fprintf(&b, ": %s", msg)
	}
	return strings.TrimSpace(b.String())
}

func cmdBufferShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var t target
	fs := newBufferFlags("show", "ID [--queue Q]",
		"Prints the stored event with this id as CloudEvents JSON (a dead letter with its\nfailure extensions). An event kept in several queues needs --queue.", stderr, &t)
	queue := fs.String("queue", "", "look in this queue only")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		fs.Usage()
		return errUsage
	}
	api, err := t.open(false)
	if err != nil {
		return err
	}
	defer api.Close()
	raw, err := api.Show(ctx, pos[0], *queue)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("event JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err = stdout.Write(out.Bytes())
	return err
}

func cmdBufferReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var t target
	var ff filterFlags
	fs := newBufferFlags("replay", "--queue Q | --to UPLINK [--since T] [filters] [--limit N] [--keep]",
		`Queues stored events for an uplink again, oldest first, marked replayed=true
and without a dead letter's failure extensions. The uplink delivers them behind
what is already waiting, with its usual retries; a new failure dead-letters
them afresh. Dead letters, and the backlog of an uplink removed from the
configuration, move out of their queue (unless --keep); retained and queued
events are copied.

  --queue deadletter.cloud                 every dead letter of uplink cloud, back to cloud
  --to cloud --since 2h                    what cloud received in the last 2 hours (buffer.retain)
  --queue deadletter.rules --to archive    the rules' dead letters, to uplink archive
  --queue uplink.old --to cloud            the backlog of removed uplink old, to cloud`, stderr, &t)
	queue := fs.String("queue", "", "queue to replay (default with --to: the uplink's retained history)")
	to := fs.String("to", "", "uplink to send to (default: the queue's own uplink)")
	ff.bind(fs, true)
	limit := fs.Int("limit", 0, "at most this many events (0: all)")
	keep := fs.Bool("keep", false, "leave replayed dead letters (or a removed uplink's backlog) in their queue")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *queue == "" && *to == "" {
		fs.Usage()
		return usageError("name --queue, --to or both")
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	api, err := t.open(true)
	if err != nil {
		return err
	}
	defer api.Close()
	res, err := api.Replay(ctx, gateway.ReplayRequest{Filter: f, Queue: *queue, To: *to, Limit: *limit, Keep: *keep})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "replayed %d event%s from %s to %s", res.Replayed, plural(res.Replayed), res.Queue, res.To)
	if res.Removed > 0 {
		fmt.Fprintf(stdout, " (%d removed from %s)", res.Removed, res.Queue)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(stdout, "; %d record%s that are not events left in place", res.Skipped, plural(res.Skipped))
	}
	fmt.Fprintln(stdout)
	return nil
}

func cmdBufferPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var t target
	var ff filterFlags
	fs := newBufferFlags("purge", "--queue Q (--before T | --id ID | --all) [filters]",
		"Removes from one queue the events named, and nothing else. Events an uplink\nis sending at that moment are still delivered.", stderr, &t)
	queue := fs.String("queue", "", "queue to purge (required)")
	before := fs.String("before", "", "events stored before this `time`")
	ff.bind(fs, false)
	all := fs.Bool("all", false, "every event of the queue (or every one the filters select)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *queue == "" {
		fs.Usage()
		return usageError("--queue is required")
	}
	f, err := ff.filter(time.Now())
	if err != nil {
		return err
	}
	req := gateway.PurgeRequest{Queue: *queue, Filter: f, All: *all}
	if req.Before, err = parseTimeFlag("before", *before, time.Now()); err != nil {
		return err
	}
	if f == (gateway.Filter{}) && req.Before.IsZero() && !req.All {
		fs.Usage()
		return usageError("name what to remove: --before, --id, --type, --source, --subject or --since, or --all")
	}
	api, err := t.open(true)
	if err != nil {
		return err
	}
	defer api.Close()
	res, err := api.Purge(ctx, req)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "purged %d event%s from %s\n", res.Purged, plural(res.Purged), res.Queue)
	return nil
}

// noArgs parses flags and refuses positional arguments.
func noArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return usageError("unexpected argument %q", pos[0])
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanBytes writes n bytes in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// localBuffer is a stopped gateway's buffer, opened by this process.
type localBuffer struct{ t *gateway.BufferTool }

func (l localBuffer) Stats(context.Context) (gateway.BufferStats, error) { return l.t.Stats() }
func (l localBuffer) List(_ context.Context, r gateway.ListRequest) (gateway.ListResult, error) {
	return l.t.List(r)
}
func (l localBuffer) Show(_ context.Context, id, queue string) ([]byte, error) {
	e, err := l.t.Show(id, queue)
	return e.JSON, err
}
func (l localBuffer) Replay(ctx context.Context, r gateway.ReplayRequest) (gateway.ReplayResult, error) {
	return l.t.Replay(ctx, r)
}
func (l localBuffer) Purge(_ context.Context, r gateway.PurgeRequest) (gateway.PurgeResult, error) {
	return l.t.Purge(r)
}
func (l localBuffer) Close() error { return l.t.Close() }
