package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/edgegate/edgegate/gateway"
)

func newBufferCmd(a *app) *cobra.Command {
	cmd := groupCmd("buffer", "inspect, replay and purge stored events and dead letters",
		`Inspect and replay what the gateway's buffer holds: the events waiting for
each uplink (queue uplink.NAME), the dead letters (deadletter.NAME,
deadletter.rules) and, with buffer.retain, the events each uplink already
received (retained.uplink.NAME).

On a running gateway the commands use its admin API (--admin, default
http://127.0.0.1:8080; --token, --token-file or EDGEGATE_TOKEN when it has
admin.tokens, --cacert for an https one signed by a private CA).
On a stopped gateway they open the buffer directly: --config FILE (every
command), or --dir DIR (stats, ls, show). Reading opens it read-only.

Times (--since, --until, --before) are when the gateway stored an event (a
dead letter: when it was dead-lettered): RFC 3339 (2026-11-23T03:41:07Z),
a local date and time (2026-11-23 03:41, 2026-11-23), or a duration ago
(90m, 2h).`)
	cmd.GroupID = groupGateway
	cmd.AddCommand(
		newBufferStatsCmd(a),
		newBufferListCmd(a),
		newBufferShowCmd(a),
		newBufferReplayCmd(a),
		newBufferPurgeCmd(a),
		newBufferCheckCmd(a),
		newBufferRepairCmd(a),
	)
	return cmd
}

// bufferSub returns a subcommand of `edgegate buffer`; run's errors from
// an admin API that does not answer also say what to do on a stopped
// gateway.
func bufferSub(use, short, long string, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if errors.Is(err, gateway.ErrAdminUnreachable) {
				err = fmt.Errorf("%w\n(on a stopped gateway use --config FILE or --dir DIR)", err)
			}
			return err
		},
	}
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
	adminFlags
	config, dir string
}

func (t *target) flags(fs *pflag.FlagSet) {
	t.adminFlags.flags(fs, "`URL` of the running gateway's admin API (default "+defaultAdmin+")")
	fs.StringVarP(&t.config, "config", "c", "", "stopped gateway: open the buffer this configuration `file` names")
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
		c, err := t.client(defaultAdmin)
		if err != nil {
			return nil, err
		}
		return c, nil
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

// filterFlags binds the event filters.
type filterFlags struct {
	since, until, id, typ, source, subject string
}

func (f *filterFlags) bind(fs *pflag.FlagSet, until bool) {
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

func newBufferStatsCmd(a *app) *cobra.Command {
	var t target
	var asJSON bool
	cmd := bufferSub("stats [--json]", "events, bytes and the oldest event per queue",
		"Events, bytes and the oldest event per queue.", func(cmd *cobra.Command, _ []string) error {
			return bufferStats(cmd.Context(), &t, asJSON, a.stdout)
		})
	t.flags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func bufferStats(ctx context.Context, t *target, asJSON bool, stdout io.Writer) error {
	api, err := t.open(false)
	if err != nil {
		return err
	}
	defer api.Close()
	st, err := api.Stats(ctx)
	if err != nil {
		return err
	}
	if asJSON {
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

func newBufferListCmd(a *app) *cobra.Command {
	var o listOptions
	cmd := bufferSub("ls [--queue Q] [filters] [--limit N] [--json]", "list stored events, with the failure of dead letters",
		"Lists stored events oldest first, queue by queue: where, when stored, id, type,\nsource, size, and for dead letters the failure (HTTP status, text).",
		func(cmd *cobra.Command, _ []string) error {
			return bufferList(cmd.Context(), &o, a.stdout, a.stderr)
		})
	fs := cmd.Flags()
	o.t.flags(fs)
	fs.StringVar(&o.queue, "queue", "", "only this queue (default: every queue)")
	o.ff.bind(fs, true)
	fs.Uint64Var(&o.after, "after", 0, "with --queue: only events after this position (SEQ)")
	fs.IntVar(&o.limit, "limit", 50, "at most this many events")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object per event")
	return cmd
}

// listOptions are the flags of `buffer ls`.
type listOptions struct {
	t      target
	ff     filterFlags
	queue  string
	after  uint64
	limit  int
	asJSON bool
}

func bufferList(ctx context.Context, o *listOptions, stdout, stderr io.Writer) error {
	f, err := o.ff.filter(time.Now())
	if err != nil {
		return err
	}
	api, err := o.t.open(false)
	if err != nil {
		return err
	}
	defer api.Close()
	res, err := api.List(ctx, gateway.ListRequest{Filter: f, Queue: o.queue, After: o.after, Limit: o.limit})
	if err != nil {
		return err
	}
	if o.asJSON {
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

func newBufferShowCmd(a *app) *cobra.Command {
	var t target
	var queue string
	cmd := bufferSub("show ID [--queue Q]", "print one stored event as CloudEvents JSON",
		"Prints the stored event with this id as CloudEvents JSON (a dead letter with its\nfailure extensions). An event kept in several queues needs --queue.",
		func(cmd *cobra.Command, args []string) error {
			return bufferShow(cmd.Context(), &t, args[0], queue, a.stdout)
		})
	cmd.Args = func(_ *cobra.Command, args []string) error {
		if len(args) != 1 || args[0] == "" {
			return usageError("want the ID of one event, got %d arguments", len(args))
		}
		return nil
	}
	t.flags(cmd.Flags())
	cmd.Flags().StringVar(&queue, "queue", "", "look in this queue only")
	return cmd
}

func bufferShow(ctx context.Context, t *target, id, queue string, stdout io.Writer) error {
	api, err := t.open(false)
	if err != nil {
		return err
	}
	defer api.Close()
	raw, err := api.Show(ctx, id, queue)
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

func newBufferReplayCmd(a *app) *cobra.Command {
	var o replayOptions
	cmd := bufferSub("replay (--queue Q | --to UPLINK) [--since T] [filters] [--limit N] [--keep]",
		"send events again to an uplink, marked replayed", `Queues stored events for an uplink again, oldest first, marked replayed=true
and without a dead letter's failure extensions. The uplink delivers them behind
what is already waiting, with its usual retries; a new failure dead-letters
them afresh. Dead letters, and the backlog of an uplink removed from the
configuration, move out of their queue (unless --keep); retained and queued
events are copied.

  --queue deadletter.cloud                 every dead letter of uplink cloud, back to cloud
  --to cloud --since 2h                    what cloud received in the last 2 hours (buffer.retain)
  --queue deadletter.rules --to archive    the rules' dead letters, to uplink archive
  --queue uplink.old --to cloud            the backlog of removed uplink old, to cloud`,
		func(cmd *cobra.Command, _ []string) error {
			return bufferReplay(cmd.Context(), &o, a.stdout)
		})
	fs := cmd.Flags()
	o.t.flags(fs)
	fs.StringVar(&o.queue, "queue", "", "queue to replay (default with --to: the uplink's retained history)")
	fs.StringVar(&o.to, "to", "", "uplink to send to (default: the queue's own uplink)")
	o.ff.bind(fs, true)
	fs.IntVar(&o.limit, "limit", 0, "at most this many events (0: all)")
	fs.BoolVar(&o.keep, "keep", false, "leave replayed dead letters (or a removed uplink's backlog) in their queue")
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// replayOptions are the flags of `buffer replay`.
type replayOptions struct {
	t            target
	ff           filterFlags
	queue, to    string
	limit        int
	keep, asJSON bool
}

func bufferReplay(ctx context.Context, o *replayOptions, stdout io.Writer) error {
	if o.queue == "" && o.to == "" {
		return usageError("name --queue, --to or both")
	}
	f, err := o.ff.filter(time.Now())
	if err != nil {
		return err
	}
	api, err := o.t.open(true)
	if err != nil {
		return err
	}
	defer api.Close()
	res, err := api.Replay(ctx, gateway.ReplayRequest{Filter: f, Queue: o.queue, To: o.to, Limit: o.limit, Keep: o.keep})
	if err != nil {
		return err
	}
	if o.asJSON {
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

func newBufferPurgeCmd(a *app) *cobra.Command {
	var o purgeOptions
	cmd := bufferSub("purge --queue Q (--before T | --id ID | --all) [filters]", "remove what is named from a queue, nothing else",
		"Removes from one queue the events named, and nothing else. Events an uplink\nis sending at that moment are still delivered.",
		func(cmd *cobra.Command, _ []string) error {
			return bufferPurge(cmd.Context(), &o, a.stdout)
		})
	fs := cmd.Flags()
	o.t.flags(fs)
	fs.StringVar(&o.queue, "queue", "", "queue to purge (required)")
	fs.StringVar(&o.before, "before", "", "events stored before this `time`")
	o.ff.bind(fs, false)
	fs.BoolVar(&o.all, "all", false, "every event of the queue (or every one the filters select)")
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// purgeOptions are the flags of `buffer purge`.
type purgeOptions struct {
	t             target
	ff            filterFlags
	queue, before string
	all, asJSON   bool
}

func bufferPurge(ctx context.Context, o *purgeOptions, stdout io.Writer) error {
	if o.queue == "" {
		return usageError("--queue is required")
	}
	f, err := o.ff.filter(time.Now())
	if err != nil {
		return err
	}
	req := gateway.PurgeRequest{Queue: o.queue, Filter: f, All: o.all}
	if req.Before, err = parseTimeFlag("before", o.before, time.Now()); err != nil {
		return err
	}
	if f == (gateway.Filter{}) && req.Before.IsZero() && !req.All {
		return usageError("name what to remove: --before, --id, --type, --source, --subject or --since, or --all")
	}
	api, err := o.t.open(true)
	if err != nil {
		return err
	}
	defer api.Close()
	res, err := api.Purge(ctx, req)
	if err != nil {
		return err
	}
	if o.asJSON {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "purged %d event%s from %s\n", res.Purged, plural(res.Purged), res.Queue)
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
