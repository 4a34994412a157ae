package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/gateway"
)

// statusOptions are the flags of `edgegate status`.
type statusOptions struct {
	adminFlags
	config  string
	devices int
	asJSON  bool
}

// errNotReady makes status exit 1 once it has printed the status.
var errNotReady = errors.New("the gateway is not ready: device intake is closed")

func newStatusCmd(a *app) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status [--admin URL | --config FILE] [--token-file F] [--json]",
		Short: "health, uplinks, backlog and devices of a running gateway",
		Long: `Asks a running gateway's admin API (GET /status) and prints, in 80 columns:
whether it is ready (device intake open: MQTT listeners accepting, the buffer
storing) and why not, its version, uptime and configuration hash, the devices
online (how many, and the first few), the buffer's usage, the event counters,
and per uplink its health, backlog, oldest waiting event, deliveries, dead
letters and last error. --json prints the admin API's JSON as it is.

The admin API is --admin, else the admin.listen of --config FILE (https when
admin.tls is set), else ` + defaultAdmin + `. With admin.tokens it needs a
token: --token-file, --token or $` + tokenEnv + `.

Exit status: 0 ready; 1 not ready (intake closed), or the admin API did not
answer or refused the token; 2 bad flags. Uplinks that fail do not make it
non-zero: the buffer holds their events; see their STATE column.`,
		Example: `  edgegate status
  edgegate status --config /etc/edgegate/edgegate.yaml --token-file /etc/edgegate/admin.token
  edgegate status --json | jq .uplinks`,
		GroupID: groupGateway,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return showStatus(cmd.Context(), &o, a.stdout)
		},
	}
	o.adminFlags.flags(cmd.Flags(), "`URL` of the gateway's admin API (default: the admin.listen of --config, else "+defaultAdmin+")")
	configFlag(cmd, &o.config, "", "configuration `file` whose admin.listen to ask")
	cmd.Flags().IntVar(&o.devices, "devices", 5, "list at most this many connected devices by id")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the admin API's /status JSON")
	return cmd
}

// showStatus prints the status of the gateway o names; errNotReady when
// it is not ready.
func showStatus(ctx context.Context, o *statusOptions, stdout io.Writer) error {
	if o.devices < 0 {
		return usageError("--devices: must be 0 or more, got %d", o.devices)
	}
	if o.admin != "" && o.config != "" {
		return usageError("--admin and --config: give one")
	}
	base := defaultAdmin
	if o.config != "" {
		c, err := gateway.LoadFile(o.config)
		if err != nil {
			return err
		}
		if l := c.Config.Admin.Listen; l != "" {
			base = adminURL(l, c.Config.Admin.TLS.CertFile != "")
		}
	}
	client, err := o.client(base)
	if err != nil {
		return err
	}
	defer client.Close()
	st, raw, err := client.Status(ctx, o.devices)
	if err != nil {
		return err
	}
	if o.asJSON {
		_, err = fmt.Fprintf(stdout, "%s\n", raw)
	} else {
		err = printStatus(stdout, st)
	}
	if err != nil {
		return err
	}
	if !st.Ready {
		return errNotReady
	}
	return nil
}

// statusWidth is the width printStatus keeps to: a terminal at 2 a.m.
const statusWidth = 80

// printStatus writes st for a person: the verdict first, then what
// explains it.
func printStatus(w io.Writer, st gateway.Status) error {
	now := st.Now
	verdict := "READY"
	if !st.Ready {
		verdict = "NOT READY"
	}
	id := st.GatewayID
	if id == "" {
		id = "edgegate"
	}
	fmt.Fprintf(w, "%s %s: %s\n", id, st.Version, verdict)
	for _, why := range st.NotReady {
		fmt.Fprint(w, wrap("  "+why, statusWidth, "    "))
	}
	fmt.Fprintf(w, "up       %s (since %s)\n", age(now.Sub(st.StartedAt)), st.StartedAt.UTC().Format(time.RFC3339))
	config := "config   "
	if st.Config.Version != 0 {
		config += fmt.Sprintf("v%d (%s), ", st.Config.Version, st.Config.Source)
	}
	config += "sha256 " + short(st.Config.Hash, 12)
	if !st.Config.LoadedAt.IsZero() {
		config += ", loaded " + age(now.Sub(st.Config.LoadedAt)) + " ago"
	}
	if st.Config.LastReloadOK {
		config += ", last reload ok"
	} else {
		config += ", LAST RELOAD FAILED (see the log)"
	}
	fmt.Fprint(w, wrap(config, statusWidth, "         "))

	ids := make([]string, len(st.ClientList))
	for i, c := range st.ClientList {
		ids[i] = c.ClientID
	}
	fmt.Fprintln(w, devicesLine(st.Clients, ids))

	b := st.Buffer
	fmt.Fprintf(w, "buffer   %d event%s, %s; %s free on disk", b.Records, plural(int(b.Records)), humanBytes(b.Bytes), humanBytes(b.DiskFree))
	switch {
	case b.DiskFull:
		fmt.Fprint(w, ", DISK FULL: refusing events")
	case b.Full:
		fmt.Fprint(w, ", FULL: dropping or refusing events")
	}
	fmt.Fprintln(w)
	c := st.Counters
	fmt.Fprintf(w, "events   %d in, %d delivered, %d dead-lettered, %d refused, %d dropped\n",
		c.Ingested, c.Delivered, c.DeadLettered, c.Refused, c.Dropped)
	if st.DeadLetters > 0 {
		fmt.Fprintf(w, "dead     %d dead letters stored: edgegate buffer ls --queue deadletter.NAME\n", st.DeadLetters)
	}
	if len(st.Uplinks) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPLINK\tSTATE\tBACKLOG\tOLDEST\tSENT\tDEAD")
	var failing []string
	for _, u := range st.Uplinks {
		state := u.State
		if u.ConsecutiveFailures > 0 {
			state = fmt.Sprintf("%s(%d)", u.State, u.ConsecutiveFailures)
		}
		oldest := "-"
		if u.OldestAge > 0 {
			oldest = age(time.Duration(u.OldestAge * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", u.Name, state, u.Backlog, oldest, u.Delivered, u.DeadLettered)
		switch {
		case u.Removed:
			failing = append(failing, fmt.Sprintf("%s: removed from the configuration; its backlog waits: edgegate buffer replay --queue uplink.%s --to UPLINK, or purge it", u.Name, u.Name))
		case u.LastError != "" && !u.Up:
			failing = append(failing, u.Name+": "+strings.Join(strings.Fields(u.LastError), " "))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range failing {
		fmt.Fprint(w, wrap(f, statusWidth, "    "))
	}
	return nil
}

// wrap breaks s into lines of at most width columns at spaces, keeping
// its spacing and indenting every line but the first; a word longer than
// a line stays whole. The result ends with a newline.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	for utf8.RuneCountInString(s) > width {
		lead := len(s) - len(strings.TrimLeft(s, " "))
		cut, col := -1, 0
		for i, r := range s {
			if col > width {
				break
			}
			if r == ' ' && i > lead {
				cut = i
			}
			col++
		}
		if cut < 0 { // the first word is longer than a line
			if cut = strings.IndexByte(s[lead:], ' '); cut < 0 {
				break
			}
			cut += lead
		}
		b.WriteString(strings.TrimRight(s[:cut], " ") + "\n")
		s = indent + strings.TrimLeft(s[cut:], " ")
	}
	b.WriteString(strings.TrimRight(s, " ") + "\n")
	return b.String()
}

// devicesLine is "devices  N online: a, b, … M more", with as many of
// the listed ids as fit in statusWidth.
func devicesLine(online int, ids []string) string {
	line := fmt.Sprintf("devices  %d online", online)
	var shown []string
	for _, id := range ids {
		more := ""
		if rest := online - len(shown) - 1; rest > 0 {
			more = fmt.Sprintf(", … %d more", rest)
		}
		if try := line + ": " + strings.Join(append(shown, id), ", ") + more; utf8.RuneCountInString(try) > statusWidth {
			break
		}
		shown = append(shown, id)
	}
	if len(shown) == 0 {
		return line
	}
	line += ": " + strings.Join(shown, ", ")
	if rest := online - len(shown); rest > 0 {
		line += fmt.Sprintf(", … %d more", rest)
	}
	return line
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return dash(s)
}

// age writes d as a person reads an age: 45s, 12m5s, 3h12m, 4d2h.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}
