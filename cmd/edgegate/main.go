package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Stamped at build time by scripts/ldflags.sh (-ldflags "-X main.version=…").
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	ctx, stop := signalContext()
	code := execute(ctx, os.Args[1:], app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

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
