package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/internal/bench"
)

// Every `edgegate bench` line of the README's Performance section is a
// command the bench accepts (--mode mqtt included): its flags parse, and it
// goes on to look for the binary to measure, here absent.
func TestReadmeBenchCommands(t *testing.T) {
	block := readmeBlock(t, "\n## Performance\n", "sh")
	lines := readmeCommands(block, "edgegate bench")
	if len(lines) < 5 || !strings.Contains(block, "--mode mqtt") {
		t.Fatalf("README Performance block: %d bench commands, want the usual ones and --mode mqtt:\n%s", len(lines), block)
	}
	t.Chdir(t.TempDir()) // --profile DIR makes DIR
	for _, line := range lines {
		args := strings.Fields(strings.TrimPrefix(line, "edgegate bench"))
		err := bench.Main(context.Background(), "/nonexistent/edgegate", args, io.Discard, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), "edgegate binary:") {
			t.Errorf("README: %s: %v", line, err)
		}
	}
}
