package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// runCmd runs the command line args in this process, as main does but
// returning the command's error instead of printing it.
func runCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return commandLine(&app{stdin: stdin, stdout: stdout, stderr: stderr}, args).ExecuteContext(ctx)
}

// runArgs runs the command line args as main does and returns the exit
// code.
func runArgs(args []string, stdout, stderr io.Writer) int {
	return execute(context.Background(), args, app{stdout: stdout, stderr: stderr})
}

// runSub runs `edgegate sub args…` like runCmd.
func runSub(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	return runCmd(ctx, append([]string{sub}, args...), nil, stdout, stderr)
}

// readmeBlock returns the first ```lang block of the README after the
// heading, failing the test if there is none.
func readmeBlock(t *testing.T, heading, lang string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), heading)
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	block := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatalf("README %q has no %s block", heading, lang)
	}
	return block[1]
}

// readmeCommands returns the lines of block that start with prefix, each
// without its # comment.
func readmeCommands(block, prefix string) []string {
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if cmd, _, _ := strings.Cut(l, "#"); strings.HasPrefix(cmd, prefix) {
			lines = append(lines, strings.TrimSpace(cmd))
		}
	}
	return lines
}

// Every `edgegate config` line of the README's remote configuration
// example names a command and flags that exist.
func TestReadmeConfigCommands(t *testing.T) {
	lines := readmeCommands(readmeBlock(t, "## Remote configuration", "sh"), "edgegate config")
	if len(lines) < 5 {
		t.Fatalf("README's remote configuration example has %d config commands", len(lines))
	}
	for _, l := range lines {
		var args []string
		for _, f := range strings.Fields(l)[1:] {
			if f != "…" && !strings.HasPrefix(f, "[") {
				args = append(args, f)
			}
		}
		a := app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
		cmd, rest, err := newRootCmd(&a).Find(args)
		if err != nil || cmd.Name() == "config" {
			t.Errorf("%s: no such command (%v)", l, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
}
