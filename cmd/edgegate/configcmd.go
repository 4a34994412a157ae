package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/edgegate/edgegate/gateway"
)

const configUsage = `Usage: edgegate config COMMAND [flags]

Remote configuration of a running gateway, through its admin API
(--to URL, default http://127.0.0.1:8080; --token-file F or
EDGEGATE_TOKEN when it has admin.tokens, or --cert/--key when it takes
client certificates; --cacert for its own certificate):

  push [--dry-run] [--drop-removed-backlog] [--force] [--sig FILE] FILE
                        apply FILE (validated, diffed, kept in the history;
                        rolled back if the gateway gets worse within
                        remote_config.health_window)
  get                   print the running configuration (secrets redacted)
  diff FILE             the keys FILE would change (a dry-run push)
  history               the configurations kept, newest first
  rollback [VERSION]    apply a kept configuration again (default: the
                        one before the running one)
`

// configAdminFlags are the flags that reach a running gateway's admin API.
type configAdminFlags struct {
	to, tokenFile, cacert, cert, key string
}

func (a *configAdminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.to, "to", defaultAdmin, "admin API of the gateway")
	fs.StringVar(&a.tokenFile, "token-file", "", "`file` holding the bearer token for the admin API (default $EDGEGATE_TOKEN)")
	fs.StringVar(&a.cacert, "cacert", "", "PEM `file` of the CA that signed an https admin API's certificate (default: the system's)")
	fs.StringVar(&a.cert, "cert", "", "PEM `file` of a client certificate (admin.tls.client_ca_file), with --key")
	fs.StringVar(&a.key, "key", "", "PEM `file` of the client certificate's key")
}

// client returns the admin client the flags name.
func (a *configAdminFlags) client() (*gateway.BufferClient, error) {
	opts := gateway.ClientOptions{Token: os.Getenv("EDGEGATE_TOKEN")}
	if a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		opts.Token = strings.TrimSpace(string(b))
	}
	var err error
	if opts.RootCAs, err = rootCAs(a.cacert); err != nil {
		return nil, err
	}
	if a.cert != "" || a.key != "" {
		pair, err := tls.LoadX509KeyPair(a.cert, a.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		opts.Certificates = []tls.Certificate{pair}
	}
	return gateway.NewBufferClient(a.to, opts), nil
}

// configPushArgs are the arguments of config push and config diff.
type configPushArgs struct {
	File               string
	DryRun             bool
	DropRemovedBacklog bool
	Force              bool   // accept an older signed version (on the gateway's host only)
	SigFile            string // a detached signature (FILE.sig), sent as Edgegate-Signature
}

// configPush applies a file to the gateway and prints what changed.
func configPush(ctx context.Context, cl *gateway.BufferClient, a configPushArgs, stdout io.Writer) error {
	doc, err := os.ReadFile(a.File)
	if err != nil {
		return err
	}
	o := gateway.PushOptions{DryRun: a.DryRun, DropRemovedBacklog: a.DropRemovedBacklog, Force: a.Force}
	if a.SigFile != "" {
		sig, err := os.ReadFile(a.SigFile)
		if err != nil {
			return fmt.Errorf("--sig: %w", err)
		}
		o.Signature = strings.TrimSpace(string(sig))
	}
	res, err := cl.PushConfig(ctx, doc, o)
	if err != nil {
		return err
	}
	switch {
	case res.DryRun:
		if len(res.Diff) == 0 {
			fmt.Fprintf(stdout, "%s: valid; no key would change\n", a.File)
		} else {
			fmt.Fprintf(stdout, "%s: valid; would change:\n", a.File)
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

// configGet prints the running configuration.
func configGet(ctx context.Context, cl *gateway.BufferClient, stdout, stderr io.Writer) error {
	doc, version, hash, err := cl.RunningConfig(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "# version %d, hash %s\n", version, hash)
	_, err = stdout.Write(doc)
	return err
}

// configHistory prints the kept configurations.
func configHistory(ctx context.Context, cl *gateway.BufferClient, stdout io.Writer) error {
	h, err := cl.ConfigHistory(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-8s %-7s %-12s %-9s %-20s %s\n", "VERSION", "ACTIVE", "HASH", "SOURCE", "APPLIED", "NOTE")
	for _, e := range h.Entries {
		active := ""
		if e.Version == h.Active {
			active = "*"
		}
		note := e.Origin
		if e.RolledBack != "" {
			note = "rolled back: " + e.RolledBack
		}
		fmt.Fprintf(stdout, "%-8d %-7s %-12.12s %-9s %-20s %s\n", e.Version, active, e.Hash, e.Source, e.AppliedAt.Format("2006-01-02T15:04:05Z"), note)
	}
	return nil
}

// configRollback applies a kept configuration again.
func configRollback(ctx context.Context, cl *gateway.BufferClient, version int64, stdout io.Writer) error {
	res, err := cl.RollbackConfig(ctx, version)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rolled back to version %d (hash %.12s, was version %d)\n", res.Version, res.Hash, res.PreviousVersion)
	return nil
}

// cmdConfig runs `edgegate config COMMAND`.
func cmdConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, configUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("config "+sub, configUsage, stderr)
	var af configAdminFlags
	af.register(fs)
	var push configPushArgs
	want := 0
	switch sub {
	case "push":
		fs.BoolVar(&push.DryRun, "dry-run", false, "validate and show what would change; apply nothing")
		fs.BoolVar(&push.DropRemovedBacklog, "drop-removed-backlog", false, "drop the undelivered events of uplinks the file removes (default: kept on disk)")
		fs.BoolVar(&push.Force, "force", false, "accept a signed version older than the running one (only on the gateway's own host)")
		fs.StringVar(&push.SigFile, "sig", "", "detached signature `file` (default: none, or the one embedded in FILE)")
		want = 1
	case "diff":
		push.DryRun = true
		want = 1
	case "get", "history":
	case "rollback":
		want = -1 // optional VERSION
	default:
		fmt.Fprintf(stderr, "edgegate config: unknown command %q\n\n%s", sub, configUsage)
		return errUsage
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	n := fs.NArg()
	if want >= 0 && n != want || want < 0 && n > 1 {
		fmt.Fprintf(stderr, "edgegate config %s: wrong number of arguments\n\n%s", sub, configUsage)
		return errUsage
	}
	cl, err := af.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	switch sub {
	case "push", "diff":
		push.File = fs.Arg(0)
		return configPush(ctx, cl, push, stdout)
	case "get":
		return configGet(ctx, cl, stdout, stderr)
	case "history":
		return configHistory(ctx, cl, stdout)
	}
	var version int64
	if n == 1 {
		if version, err = strconv.ParseInt(fs.Arg(0), 10, 64); err != nil || version <= 0 {
			fmt.Fprintf(stderr, "edgegate config rollback: VERSION must be a version number from config history, not %q\n", fs.Arg(0))
			return errUsage
		}
	}
	return configRollback(ctx, cl, version, stdout)
}
