package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/gateway"
)

// configOptions are the flags every config command shares: the gateway's
// admin API (--to, an alias of --admin, as operators read it in a push).
type configOptions struct {
	adminFlags
}

// call runs f with a client of the admin API o names.
func (o *configOptions) call(f func(*gateway.BufferClient) error) error {
	cl, err := o.client(defaultAdmin)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(cl)
}

func (o *configOptions) register(cmd *cobra.Command) {
	o.adminFlags.flags(cmd.Flags(), "`URL` of the gateway's admin API (default "+defaultAdmin+")")
	cmd.Flags().StringVar(&o.admin, "to", "", "the same as --admin")
}

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "change a running gateway's configuration; the configuration reference",
		Long: `Remote configuration of a running gateway through its admin API (--to URL,
default ` + defaultAdmin + `; --token-file F, --token or $` + tokenEnv + ` when it
has admin.tokens, --cert/--key when it takes client certificates, --cacert for
its own certificate). A pushed file is validated, diffed, kept in the
gateway's history and rolled back if the gateway gets worse within
remote_config.health_window. "config reference" prints every key of the
configuration file, and "config sign" signs a file for gateways that hold
public keys (remote_config.public_keys); both work offline.`,
		GroupID: groupGateway,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	cmd.AddCommand(newConfigPushCmd(a, false), newConfigPushCmd(a, true), newConfigGetCmd(a),
		newConfigHistoryCmd(a), newConfigRollbackCmd(a), newConfigReferenceCmd(a), newConfigSignCmd(a))
	return cmd
}

// configPushArgs are the arguments of config push and config diff.
type configPushArgs struct {
	configOptions
	DryRun             bool
	DropRemovedBacklog bool
	Force              bool   // accept an older signed version (on the gateway's host only)
	SigFile            string // a detached signature (FILE.sig), sent as Edgegate-Signature
}

// newConfigPushCmd is config push, or config diff (a dry-run push).
func newConfigPushCmd(a *app, diff bool) *cobra.Command {
	var o configPushArgs
	cmd := &cobra.Command{
		Use:   "push FILE [--to URL] [--token-file F] [--dry-run]",
		Short: "apply a configuration file to a running gateway",
		Example: `  edgegate config push --to https://gw-17:8443 --token-file ops.token --cacert admin.crt new.yaml
  edgegate config push --dry-run new.yaml`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return configPush(cmd.Context(), &o, args[0], a.stdout)
		},
	}
	if diff {
		o.DryRun = true
		cmd.Use = "diff FILE [--to URL] [--token-file F]"
		cmd.Short = "the keys a configuration file would change on a running gateway (nothing is applied)"
		cmd.Example = `  edgegate config diff --token-file ops.token new.yaml`
	} else {
		cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "validate and show what would change; apply nothing")
		cmd.Flags().BoolVar(&o.DropRemovedBacklog, "drop-removed-backlog", false, "drop the undelivered events of uplinks the file removes (default: kept on disk)")
		cmd.Flags().BoolVar(&o.Force, "force", false, "accept a signed version older than the running one (only on the gateway's own host)")
		cmd.Flags().StringVar(&o.SigFile, "sig", "", "detached signature `file` (default: none, or the one embedded in FILE)")
	}
	o.register(cmd)
	return cmd
}

// configPush applies a file to the gateway and prints what changed.
func configPush(ctx context.Context, o *configPushArgs, file string, stdout io.Writer) error {
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	p := gateway.PushOptions{DryRun: o.DryRun, DropRemovedBacklog: o.DropRemovedBacklog, Force: o.Force}
	if o.SigFile != "" {
		sig, err := os.ReadFile(o.SigFile)
		if err != nil {
			return fmt.Errorf("--sig: %w", err)
		}
		p.Signature = strings.TrimSpace(string(sig))
	}
	var res gateway.ApplyResult
	if err := o.call(func(cl *gateway.BufferClient) (err error) {
		res, err = cl.PushConfig(ctx, doc, p)
		return err
	}); err != nil {
		return err
	}
	switch {
	case res.DryRun:
		if len(res.Diff) == 0 {
			fmt.Fprintf(stdout, "%s: valid; no key would change\n", file)
		} else {
			fmt.Fprintf(stdout, "%s: valid; would change:\n", file)
		}
	case res.Unchanged:
		fmt.Fprintf(stdout, "unchanged: the gateway runs this configuration (version %d)\n", res.Version)
	default:
		fmt.Fprintf(stdout, "applied version %d (hash %.12s, was version %d); changed:\n", res.Version, res.Hash, res.PreviousVersion)
	}
	for _, p := range res.Diff {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	return nil
}

func newConfigGetCmd(a *app) *cobra.Command {
	var o configOptions
	cmd := &cobra.Command{
		Use:   "get [--to URL] [--token-file F]",
		Short: "print the running configuration (secrets redacted); its version and hash go to stderr",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return configGet(cmd.Context(), &o, a.stdout, a.stderr)
		},
	}
	o.register(cmd)
	return cmd
}

// configGet prints the running configuration.
func configGet(ctx context.Context, o *configOptions, stdout, stderr io.Writer) error {
	return o.call(func(cl *gateway.BufferClient) error {
		doc, version, hash, err := cl.RunningConfig(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "# version %d, hash %s\n", version, hash)
		_, err = stdout.Write(doc)
		return err
	})
}

func newConfigHistoryCmd(a *app) *cobra.Command {
	var o configOptions
	cmd := &cobra.Command{
		Use:   "history [--to URL] [--token-file F]",
		Short: "the configurations the gateway keeps, newest first (* marks the active one)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return configHistory(cmd.Context(), &o, a.stdout)
		},
	}
	o.register(cmd)
	return cmd
}

// configHistory prints the kept configurations.
func configHistory(ctx context.Context, o *configOptions, stdout io.Writer) error {
	var h gateway.ConfigHistory
	if err := o.call(func(cl *gateway.BufferClient) (err error) {
		h, err = cl.ConfigHistory(ctx)
		return err
	}); err != nil {
		return err
	}
	// Signed versions are Unix times (10 digits): columns take their width.
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tACTIVE\tHASH\tSOURCE\tAPPLIED\tNOTE")
	for _, e := range h.Entries {
		active := ""
		if e.Version == h.Active {
			active = "*"
		}
		note := e.Origin
		if e.RolledBack != "" {
			note = "rolled back: " + e.RolledBack
		}
		fmt.Fprintf(tw, "%d\t%s\t%.12s\t%s\t%s\t%s\n", e.Version, active, e.Hash, e.Source, e.AppliedAt.Format("2006-01-02T15:04:05Z"), note)
	}
	return tw.Flush()
}

func newConfigRollbackCmd(a *app) *cobra.Command {
	var o configOptions
	cmd := &cobra.Command{
		Use:   "rollback [VERSION] [--to URL] [--token-file F]",
		Short: "apply a kept configuration again (default: the one before the running one)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("unexpected argument %q: give at most one VERSION", args[1])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var version int64
			if len(args) == 1 {
				v, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || v <= 0 {
					return usageError("VERSION must be a version number from config history, not %q", args[0])
				}
				version = v
			}
			return configRollback(cmd.Context(), &o, version, a.stdout)
		},
	}
	o.register(cmd)
	return cmd
}

// configRollback applies a kept configuration again.
func configRollback(ctx context.Context, o *configOptions, version int64, stdout io.Writer) error {
	var res gateway.ApplyResult
	if err := o.call(func(cl *gateway.BufferClient) (err error) {
		res, err = cl.RollbackConfig(ctx, version)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rolled back to version %d (hash %.12s, was version %d)\n", res.Version, res.Hash, res.PreviousVersion)
	return nil
}

// fileArg wants exactly one argument, the configuration file.
func fileArg(_ *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return usageError("which configuration FILE?")
	case len(args) > 1:
		return usageError("unexpected argument %q: give one FILE", args[1])
	}
	return nil
}
