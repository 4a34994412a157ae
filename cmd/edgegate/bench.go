package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/edgegate/edgegate/internal/bench"
)

// cmdBench is `edgegate bench`: internal/bench measuring this very binary
// unless --edgegate names another.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	return bench.Main(ctx, exe, args, stdout, stderr)
}
