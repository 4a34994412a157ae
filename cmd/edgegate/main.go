package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/sdnotify"
)

// Stamped at build time by scripts/ldflags.sh (-ldflags "-X main.version=…").
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

const usage = `edgegate — an edge gateway for IoT device events

Usage:
  edgegate run [--config FILE]        run the gateway (default config: configs/edgegate.yaml)
  edgegate validate [--config FILE]   check a configuration file and report every error
  edgegate passwd [--generate]        hash a device secret (read from the terminal or stdin)
  edgegate sink [flags]               receive CloudEvents over HTTP and print them
  edgegate simulate [flags]           simulated MQTT devices publishing JSON telemetry
  edgegate rules test [--config FILE] [--events FILE.jsonl]
                                      run the rules' test cases / show their decisions
  edgegate buffer stats|ls|show|replay|purge
                                      inspect, replay and purge stored events and dead letters
  edgegate bench [flags]              benchmark this binary end to end next to the raw broker
  edgegate version                    print the version

Run "edgegate COMMAND -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	ctx, stop := signalContext()
	defer stop()

	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, rest, stderr)
	case "validate":
		err = cmdValidate(rest, stdout, stderr)
	case "passwd":
		err = cmdPasswd(ctx, rest, os.Stdin, stdout, stderr)
	case "sink":
		err = cmdSink(ctx, rest, stdout, stderr)
	case "simulate":
		err = cmdSimulate(ctx, rest, stdout, stderr)
	case "rules":
		err = cmdRules(ctx, rest, stdout, stderr)
	case "buffer":
		err = cmdBuffer(ctx, rest, stdout, stderr)
	case "bench":
		err = cmdBench(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "edgegate %s (commit %s, built %s) %s %s/%s\n", version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "edgegate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "edgegate %s: %v\n", cmd, err)
		return 1
	}
}

// errUsage marks errors whose message was already printed with the usage.
var errUsage = errors.New("usage")

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// exits the process at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	// stopped, not ctx: the first signal cancels ctx, and the watcher must
	// still be there for the second.
	stopped := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-stopped:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "edgegate: second %v: exiting now\n", s)
			os.Exit(130)
		case <-stopped:
		}
	}()
	var once sync.Once
	return ctx, func() {
		cancel()
		once.Do(func() {
			signal.Stop(sigs)
			close(stopped)
		})
	}
}

// newFlagSet returns the flag set of a command that reports errors to
// stderr and answers -h with usage followed by the flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "configs/edgegate.yaml", "configuration file")
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := gateway.LoadFile(*path)
	if err != nil {
		printConfigErrors(stderr, err)
		return errUsage
	}
	for _, w := range c.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

// printConfigErrors prints each problem on its own line, as file:line:col:
// field: problem.
func printConfigErrors(w io.Writer, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	compiled, err := gateway.LoadFile(*path)
	if err != nil {
		printConfigErrors(stderr, err)
		return errUsage
	}
	cfg := compiled.Config
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel())
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)
	log.Info("starting edgegate", "version", version, "commit", commit, "config", *path)
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && cfg.MemoryLimit > 0 {
		// A soft limit keeps a busy gateway near its live heap instead of
		// twice it (GOGC=100): ~55 MB RSS instead of ~70 MB under load.
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}

	set := metrics.NewSet()
	set.NewGauge(metricname.With("edgegate_build_info", "version", version, "goversion", runtime.Version()), func() float64 { return 1 })
	g, err := gateway.New(compiled, gateway.Options{Log: log, Metrics: set, LogLevel: level, ConfigPath: *path, Version: version})
	if err != nil {
		return err
	}
	// SIGHUP reloads the configuration file; a bad file keeps the running one.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				g.ReloadFile(*path) // logs success or every error
			case <-ctx.Done():
				return
			}
		}
	}()
	notifySystemd(ctx, g, log)
	if err := g.Run(ctx); err != nil {
		log.Error("edgegate stopped with an error", "err", err)
		return err
	}
	return nil
}

// notifySystemd tells systemd (Type=notify, WatchdogSec) when g is ready
// and when it stops, and pings the watchdog while the process runs. Outside
// systemd it does nothing.
func notifySystemd(ctx context.Context, g *gateway.Gateway, log *slog.Logger) {
	n := sdnotify.FromEnv()
	if !n.Enabled() {
		return
	}
	notify := func(state string) {
		if err := n.Notify(state); err != nil {
			log.Warn("systemd notification failed", "state", state, "err", err)
		}
	}
	go func() {
		select {
		case <-g.Ready():
			notify(sdnotify.Ready)
		case <-ctx.Done():
		}
		<-ctx.Done()
		notify(sdnotify.Stopping)
	}()
	go n.RunWatchdog(context.WithoutCancel(ctx), func(err error) {
		log.Warn("systemd watchdog ping failed", "err", err)
	})
}
