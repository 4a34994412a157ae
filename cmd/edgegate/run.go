package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/internal/exetrim"
	"github.com/edgegate/edgegate/internal/sdnotify"
)

// defaultConfig is the configuration file run and validate read without
// --config: the example, relative to the working directory (a checkout).
// An installed gateway names its file (/etc/edgegate/edgegate.yaml).
const defaultConfig = "configs/edgegate.yaml"

func newRunCmd(a *app) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run [--config FILE]",
		Short: "run the gateway",
		Long: `Runs the gateway on the configuration file: the MQTT broker for devices, the
rules, the disk buffer, the uplinks and the admin API. Logs go to stderr.

Signals: SIGTERM or SIGINT stop it gracefully (stop device intake, finish
in-flight sends within shutdown_timeout, close the buffer); a second one exits
at once (status 130). SIGHUP reloads the configuration file; a file with
errors is logged and the running configuration kept.

Exit status: 0 after a clean stop, 1 when it stops with an error, 2 when the
configuration is invalid (every problem is printed, as validate does).`,
		Example: `  edgegate run --config /etc/edgegate/edgegate.yaml`,
		GroupID: groupGateway,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGateway(cmd.Context(), path, a.stderr)
		},
	}
	configFlag(cmd, &path, defaultConfig, "configuration `file` to run")
	return cmd
}

func newValidateCmd(a *app) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate [--config FILE]",
		Short: "check a configuration file and report every error",
		Long: `Loads the configuration file as run would, without starting anything: YAML
syntax, unknown and duplicate keys, value types and ranges, every section's
settings (mqtt listeners, auth, events, rules, buffer, uplinks, admin) and the
rules, whose expressions are compiled and whose routes must name uplinks (a
rules.file is read too). Every problem is printed on its own line,
as file:line:col: field.path: what is wrong; warnings (accepted but risky
settings) as "warning: …".

Exit status: 0 valid (prints "FILE: ok"), 2 invalid.`,
		Example: `  edgegate validate --config /etc/edgegate/edgegate.yaml`,
		GroupID: groupGateway,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return validate(path, a.stdout, a.stderr)
		},
	}
	configFlag(cmd, &path, defaultConfig, "configuration `file` to check")
	return cmd
}

func validate(path string, stdout, stderr io.Writer) error {
	c, err := gateway.LoadFile(path)
	if err != nil {
		printConfigErrors(stderr, err)
		return errUsage
	}
	for _, w := range c.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
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

// runGateway runs the gateway on the configuration at path until ctx ends.
func runGateway(ctx context.Context, path string, stderr io.Writer) error {
	local, err := gateway.LoadFile(path)
	if err != nil {
		printConfigErrors(stderr, err)
		return errUsage
	}
	cfg := local.Config
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel())
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)
	log.Info("starting edgegate", "version", version, "commit", commit, "config", path)
	// A configuration applied remotely since (kept next to the buffer) is
	// used while the local file is as it was then.
	compiled, err := gateway.LoadStartup(path, log)
	if err != nil {
		printConfigErrors(stderr, err)
		return errUsage
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && cfg.MemoryLimit > 0 {
		// A soft limit keeps a busy gateway near its live heap instead of
		// twice it (GOGC=100): ~55 MB RSS instead of ~70 MB under load.
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}

	// /metrics carries # HELP and # TYPE lines: VictoriaMetrics/metrics
	// writes them only with this process-wide switch, so main sets it, once.
	metrics.ExposeMetadata(true)
	g, err := gateway.New(compiled, gateway.Options{Log: log, Metrics: metrics.NewSet(), LogLevel: level, ConfigPath: path, Version: version})
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
				g.ReloadSIGHUP(path) // logs success or every error
			case <-ctx.Done():
				return
			}
		}
	}()
	notifySystemd(ctx, g, log)
	go trimExecutable(ctx, g, log)
	if err := g.Run(ctx); err != nil {
		log.Error("edgegate stopped with an error", "err", err)
		return err
	}
	return nil
}

// exeTrimDelay is how long after ready the executable's pages are handed
// back: the code that only starting runs is done by then.
const exeTrimDelay = time.Second

// trimExecutable hands back the executable's resident pages once, a while
// after g is ready (package exetrim).
func trimExecutable(ctx context.Context, g *gateway.Gateway, log *slog.Logger) {
	select {
	case <-g.Ready():
	case <-ctx.Done():
		return
	}
	t := time.NewTimer(exeTrimDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return
	}
	before, after, err := exetrim.Trim()
	if err != nil {
		log.Info("the executable's pages stay resident", "err", err)
		return
	}
	log.Info("handed the executable's pages back to the kernel", "resident_before_bytes", before, "resident_after_bytes", after)
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
