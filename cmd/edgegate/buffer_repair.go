package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/gateway"
)

// newBufferCheckCmd and newBufferRepairCmd are `edgegate buffer check`
// and `edgegate buffer repair`: they work on a stopped gateway's buffer
// only (Badger lets one process open it).
func newBufferCheckCmd(a *app) *cobra.Command {
	var o repairOptions
	cmd := bufferSub("check (--config FILE | --dir DIR) [--json]", "read every file and record of a stopped gateway's buffer; exit 1 if damaged",
		"Read every table (checksums included), the MANIFEST and every record of a\nstopped gateway's buffer, through a scratch copy: nothing in the buffer changes.\nExit status 1 if it is damaged.",
		func(cmd *cobra.Command, _ []string) error {
			return bufferCheck(&o, a.stdout)
		})
	o.flags(cmd)
	return cmd
}

func newBufferRepairCmd(a *app) *cobra.Command {
	var o repairOptions
	cmd := bufferSub("repair (--config FILE | --dir DIR) [--json]", "salvage every readable record into a fresh buffer; keep the damaged one aside",
		"Salvage every readable record of a stopped gateway's buffer into a fresh buffer\nin the same directory, keeping queues, positions, append times and resend marks.\nThe damaged buffer is moved aside to DIR.damaged-TIME; what could not be read\nis listed. Records deleted shortly before the damage may be delivered again.",
		func(cmd *cobra.Command, _ []string) error {
			return bufferRepair(&o, a.stdout)
		})
	o.flags(cmd)
	return cmd
}

// repairOptions are the flags of check and repair.
type repairOptions struct {
	config, dir string
	asJSON      bool
}

func (o *repairOptions) flags(cmd *cobra.Command) {
	configFlag(cmd, &o.config, "", "the gateway's configuration `file`: its buffer.dir")
	cmd.Flags().StringVar(&o.dir, "dir", "", "the buffer directory")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the report as JSON")
}

// bufferDir returns the buffer directory the flags name.
func (o *repairOptions) bufferDir() (string, error) {
	switch {
	case (o.config == "") == (o.dir == ""):
		return "", usageError("give --config or --dir")
	case o.config != "":
		c, err := gateway.LoadFile(o.config)
		if err != nil {
			return "", err
		}
		return c.Config.Buffer.Dir, nil
	}
	return o.dir, nil
}

// errDamaged makes check exit 1 once it has printed its report.
var errDamaged = errors.New("the buffer is damaged: stop the gateway and run `edgegate buffer repair`")

func bufferCheck(o *repairOptions, stdout io.Writer) error {
	dir, err := o.bufferDir()
	if err != nil {
		return err
	}
	r, err := gateway.CheckBuffer(dir, nil)
	if err != nil {
		return explainLocked(err)
	}
	if o.asJSON {
		if err := printJSON(stdout, r); err != nil {
			return err
		}
	} else {
		printReport(stdout, r, "readable")
	}
	if len(r.Problems) > 0 {
		return errDamaged
	}
	return nil
}

func bufferRepair(o *repairOptions, stdout io.Writer) error {
	dir, err := o.bufferDir()
	if err != nil {
		return err
	}
	r, err := gateway.RepairBuffer(dir, nil)
	if err != nil {
		return explainLocked(err)
	}
	if o.asJSON {
		return printJSON(stdout, r)
	}
	printReport(stdout, r, "salvaged")
	fmt.Fprintf(stdout, "the buffer was moved to %s and the salvaged records put in its place\n", r.Damaged)
	return nil
}

// explainLocked says what to do when a gateway holds the buffer.
func explainLocked(err error) error {
	if errors.Is(err, gateway.ErrBufferLocked) {
		return fmt.Errorf("%v\nstop the gateway first: check and repair need the buffer to themselves", err)
	}
	return err
}

// printReport prints a check or repair report; what names the records
// counted (readable, salvaged).
func printReport(w io.Writer, r gateway.BufferReport, what string) {
	fmt.Fprintf(w, "buffer %s: %d tables\n", r.Dir, r.Tables)
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "no damage found")
	} else {
		fmt.Fprintln(w, "DAMAGED:")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintf(w, "%d records %s (%s)", r.Records, what, humanBytes(r.Bytes))
	names := make([]string, 0, len(r.Queues))
	for n := range r.Queues {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		sep := ": "
		if i > 0 {
			sep = ", "
		}
		fmt.Fprintf(w, "%s%s %d", sep, n, r.Queues[n].Records)
	}
	fmt.Fprintln(w)
	if r.Unreadable > 0 {
		fmt.Fprintf(w, "%d values unreadable\n", r.Unreadable)
	}
	if r.BlocksLost > 0 {
		fmt.Fprintf(w, "%d blocks of damaged tables unreadable (the rest of those tables was salvaged)\n", r.BlocksLost)
	}
	if len(r.Left) > 0 {
		fmt.Fprintf(w, "left behind: %s\n", strings.Join(r.Left, ", "))
	}
}
