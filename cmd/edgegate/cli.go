package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
)

// app is what every command shares: the process's streams. Each command
// group has one file with a newXCmd(a *app) *cobra.Command constructor;
// newRootCmd adds it. There is no package-level state: a test builds a
// fresh tree with its own streams (execute).
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad flags or arguments, an invalid configuration
)

// errUsage marks usage errors (exit 2). Bare, its message was already
// printed with the usage; wrapped by usageError, run prints the message
// and where to find help.
var errUsage = errors.New("usage")

// usageError is a flag or argument problem: exit status 2.
func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// Command groups of the root help.
const (
	groupGateway = "gateway"
	groupTools   = "tools"
)

// newRootCmd returns the command tree. A new command is one more
// constructor in the AddCommand list, with its GroupID.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "edgegate",
		Short: "an edge gateway for IoT device events",
		Long: `edgegate — an edge gateway for IoT device events

Devices publish over MQTT to the embedded broker; every message becomes a
CloudEvent, goes through the rules, is kept in a durable disk buffer and is
forwarded to cloud endpoints (CloudEvents over HTTP, MQTT).`,
		Version: version,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return groupRun(cmd, args)
		},
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
	}
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError("%v", err)
	})
	root.AddGroup(
		&cobra.Group{ID: groupGateway, Title: "Run and operate a gateway:"},
		&cobra.Group{ID: groupTools, Title: "Tools for devices, uplinks and rules:"},
	)
	root.SetHelpCommandGroupID(groupTools)
	root.SetCompletionCommandGroupID(groupTools)
	root.AddCommand(
		newRunCmd(a),
		newValidateCmd(a),
		newStatusCmd(a),
		newBufferCmd(a),
		newConfigCmd(a),
		newKeygenCmd(a),
		newPasswdCmd(a),
		newSinkCmd(a),
		newSimulateCmd(a),
		newRulesCmd(a),
		newBenchCmd(a),
		newVersionCmd(a),
	)
	return root
}

// execute runs the command args name and returns the process exit code:
// 0 ok, 1 error, 2 usage. Errors are printed to a.stderr as
// "edgegate COMMAND: error".
func execute(ctx context.Context, args []string, a app) int {
	cmd, err := commandLine(&a, args).ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if cmd == nil { // cobra found no command to run
		cmd = newRootCmd(&a)
	}
	if errors.Is(err, errUsage) {
		if msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": "); err != errUsage {
			fmt.Fprintf(a.stderr, "%s: %s\nRun \"%s --help\" for usage.\n", cmd.CommandPath(), msg, cmd.CommandPath())
		}
		return exitUsage
	}
	fmt.Fprintf(a.stderr, "%s: %v\n", cmd.CommandPath(), err)
	return exitError
}

// usageTemplate is the usage of every command (cobra's text/template
// data is the *cobra.Command): a group shows one usage line and its
// commands by group; a command its line, examples and flags.
const usageTemplate = `Usage:
{{- if .HasAvailableSubCommands}}
  {{.CommandPath}} COMMAND [flags]
{{- else}}
  {{.UseLine}}
{{- end}}
{{- if .HasExample}}

Examples:
{{.Example}}
{{- end}}
{{- if .HasAvailableSubCommands}}
{{- range $g := .Groups}}

{{$g.Title}}
{{- range $.Commands}}{{if and (eq .GroupID $g.ID) (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}
{{- end}}
{{- if not .AllChildCommandsHaveGroup}}

Commands:
{{- range .Commands}}{{if and (eq .GroupID "") .IsAvailableCommand}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}
{{- end}}
{{- end}}
{{- if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{- end}}
{{- if .HasAvailableInheritedFlags}}

Global flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}
{{- end}}
{{- if .HasAvailableSubCommands}}

Run "{{.CommandPath}} COMMAND --help" for the flags of a command.
{{- end}}
`

// commandLine returns the command tree, ready to execute args.
func commandLine(a *app, args []string) *cobra.Command {
	root := newRootCmd(a)
	root.SetArgs(goFlagsToPosix(root, args))
	return root
}

// groupRun is the RunE of a command that only holds subcommands (edgegate,
// buffer, rules): "help" prints the help to stdout; nothing, or a name that
// is not a subcommand, is a usage error.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		cmd.SetOut(cmd.ErrOrStderr())
		cmd.Help()
		return errUsage
	}
	if args[0] == "help" {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	cmd.SuggestionsMinimumDistance = 2 // typos of one or two letters
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += ": did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError("%s", msg)
}

// groupCmd returns a command that only holds subcommands.
func groupCmd(use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRun,
	}
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unexpected argument %q", args[0])
	}
	return nil
}

// goFlagLike is a single-dash long flag, as Go's flag package takes them
// (-config FILE, -devices=5).
var goFlagLike = regexp.MustCompile(`^-([a-zA-Z][a-zA-Z0-9-]+)(=.*)?$`)

// goFlagsToPosix rewrites the single-dash long flags of the command args
// name (-config) to the double-dash form pflag wants (--config), so the
// forms Go's flag package took before cobra keep working. Only names of
// that command's long flags are rewritten: -v and other shorthands stay.
// pflag would otherwise read -config as -c onfig.
func goFlagsToPosix(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, len(args))
	copy(out, args)
	for i, arg := range out {
		if arg == "--" {
			break
		}
		m := goFlagLike.FindStringSubmatch(arg)
		if m == nil {
			continue
		}
		if cmd.Flags().Lookup(m[1]) != nil || cmd.InheritedFlags().Lookup(m[1]) != nil || m[1] == "help" || m[1] == "version" {
			out[i] = "-" + arg
		}
	}
	return out
}

// configFlag adds --config (-c), the configuration file, with the help
// text usage, and completes it with YAML files.
func configFlag(cmd *cobra.Command, p *string, value, usage string) {
	cmd.Flags().StringVarP(p, "config", "c", value, usage)
	cmd.MarkFlagFilename("config", "yaml", "yml")
}

func versionLine() string {
	return fmt.Sprintf("edgegate %s (commit %s, built %s) %s %s/%s", version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "print the version, commit, build date, Go version and platform",
		GroupID: groupTools,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(a.stdout, versionLine())
			return err
		},
	}
}
