package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/access"
)

func newPasswdCmd(a *app) *cobra.Command {
	var generate bool
	var user string
	cmd := &cobra.Command{
		Use:   "passwd [--generate] [--user NAME]",
		Short: "hash a device secret (read from the terminal or stdin)",
		Long: `Prints the argon2id hash of a secret, for auth.users[].password_hash (and
the admin tokens). The secret is read from the terminal (asked twice, not
echoed) or, when stdin is not a terminal, from the first line of stdin;
never from the command line, where other users and the shell history would
see it.

With --generate, a random secret (192 bits) is made instead and printed on
the first line, before its hash: give it to the device, keep only the
hash. With --user, stdout is only the users entry (append it to a users
file) and a generated secret goes to stderr.`,
		Example: `  edgegate passwd                            # type the secret; prints its hash
  printf '%s\n' "$SECRET" | edgegate passwd   # from a script
  edgegate passwd --generate --user door-1 >> devices.yaml`,
		GroupID: groupTools,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unexpected argument %q: the secret is never taken from the command line", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return passwd(cmd.Context(), generate, user, a.stdin, a.stdout, a.stderr)
		},
	}
	cmd.Flags().BoolVar(&generate, "generate", false, "make a random secret, print it and its hash")
	cmd.Flags().StringVar(&user, "user", "", "print a users entry for user `NAME` instead of the bare hash")
	return cmd
}

// secretBytes is the entropy of a generated secret.
const secretBytes = 24

// passwd hashes a secret read from stdin, or a generated one, and prints
// the hash (or a users entry for user).
func passwd(ctx context.Context, generate bool, user string, stdin io.Reader, stdout, stderr io.Writer) error {
	var secret []byte
	if generate {
		b := make([]byte, secretBytes)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		secret = []byte(base64.RawURLEncoding.EncodeToString(b))
	} else {
		var err error
		if secret, err = readSecret(ctx, stdin, stderr); err != nil {
			return err
		}
	}
	hash, err := access.HashSecret(secret)
	if err != nil {
		return err
	}
	if user != "" {
		if generate {
			fmt.Fprintf(stderr, "secret for %s: %s\n", user, secret)
		}
		fmt.Fprintf(stdout, "- username: %s\n  password_hash: %q\n", strconv.Quote(user), hash)
		return nil
	}
	if generate {
		fmt.Fprintf(stdout, "%s\n", secret)
	}
	fmt.Fprintln(stdout, hash)
	return nil
}

// readSecret reads the secret from the terminal on stdin, twice and
// without echo, or else the first line of stdin.
func readSecret(ctx context.Context, stdin io.Reader, stderr io.Writer) ([]byte, error) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		first, err := readHidden(ctx, f, stderr, "Secret: ")
		if err != nil {
			return nil, err
		}
		again, err := readHidden(ctx, f, stderr, "Again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(first, again) {
			return nil, errors.New("the secrets do not match")
		}
		return nonEmpty(first)
	}
	line, err := bufio.NewReaderSize(stdin, 4096).ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read the secret from stdin: %w (at most 4 KiB, one line)", err)
	}
	return nonEmpty(trimEOL(line))
}

func nonEmpty(secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("empty secret")
	}
	return bytes.Clone(secret), nil
}

// trimEOL removes one trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// readHidden prompts on stderr and reads one line from the terminal f with
// echo off, restoring the terminal afterwards, also when ctx is cancelled
// (an interrupt) while it waits.
func readHidden(ctx context.Context, f *os.File, stderr io.Writer, prompt string) ([]byte, error) {
	fmt.Fprint(stderr, prompt)
	restore, err := echoOff(f)
	if err != nil {
		return nil, fmt.Errorf("turn off echo: %w", err)
	}
	defer fmt.Fprintln(stderr)
	type result struct {
		line []byte
		err  error
	}
	done := make(chan result, 1)
	go func() { // ends when the process does, if interrupted
		line, err := bufio.NewReader(f).ReadSlice('\n')
		done <- result{bytes.Clone(trimEOL(line)), err}
	}()
	select {
	case r := <-done:
		restore()
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			return nil, r.err
		}
		return r.line, nil
	case <-ctx.Done():
		restore()
		return nil, ctx.Err()
	}
}
