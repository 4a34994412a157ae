package main

import (
	"context"
	"io"
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
