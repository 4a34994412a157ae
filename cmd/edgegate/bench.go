package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/internal/bench"
)

// newBenchCmd is `edgegate bench`: internal/bench measuring this very
// binary unless --edgegate names another. internal/bench owns its flags
// (the same with make bench and in its tests), so cobra passes them on
// unparsed; -h prints them.
func newBenchCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "bench [flags]",
		Short: "benchmark this binary end to end next to the raw broker",
		Long: `Benchmark this binary end to end: simulated MQTT devices publish to a fresh
gateway (durable buffer, 10 rules) that forwards to a local CloudEvents
receiver, next to the raw ceiling (the same devices publishing to the
embedded broker in-process with a handler that only counts). Prints
throughput and its ratio to the ceiling, latency, loss, peak RSS, CPU per
1,000 events and disk bytes per event; --json for the results. Run
"edgegate bench -h" for its flags.`,
		Example: `  edgegate bench --quick
  edgegate bench --mode batch,binary --outage 60s --json results.json`,
		GroupID:            groupTools,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find this binary: %w", err)
			}
			err = bench.Main(cmd.Context(), exe, args, a.stdout, a.stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		},
	}
}
