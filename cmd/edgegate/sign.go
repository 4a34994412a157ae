package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/configsign"
)

// keygenOptions are the flags of keygen.
type keygenOptions struct {
	Out string // NAME: writes NAME.key and NAME.pub
}

// keygen writes a new key pair and reports it on stdout.
func keygen(o keygenOptions, stdout io.Writer) error {
	k, err := configsign.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := configsign.WriteKeyPair(o.Out, k); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s.key (private: keep it secret) and %s.pub (public)\nkey id: %s\n", o.Out, o.Out, k.Public().ID())
	return nil
}

// signOptions are the flags and argument of config sign.
type signOptions struct {
	Key      string // private key file
	Version  int64  // 0: now (see defaultVersion)
	Detached bool
	Out      string // "" = FILE (embedded) or FILE.sig (detached); "-" = stdout
	File     string
	Now      func() time.Time
}

// signConfig signs o.File and writes the result; it reports the version
// and key id on stdout (on stderr when the document goes to stdout).
func signConfig(o signOptions, stdout, stderr io.Writer) error {
	key, err := configsign.ReadPrivateKeyFile(o.Key)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(o.File)
	if err != nil {
		return err
	}
	body, old, err := configsign.Split(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", o.File, err)
	}
	version := o.Version
	if version == 0 {
		version = defaultVersion(o.Now(), old)
	}
	var out []byte
	var line configsign.Line
	dest := o.Out
	if o.Detached {
		if old != nil {
			return fmt.Errorf("%s has an embedded signature line: sign it embedded, or remove the line to sign it detached", o.File)
		}
		if line, err = configsign.Sign(key, body, version); err != nil {
			return err
		}
		out = []byte(line.String() + "\n")
		if dest == "" {
			dest = o.File + ".sig"
		}
	} else {
		if out, line, err = configsign.SignDocument(key, doc, version); err != nil {
			return err
		}
		if dest == "" {
			dest = o.File
		}
	}
	report := stdout
	if dest == "-" {
		if _, err := stdout.Write(out); err != nil {
			return err
		}
		report = stderr
	} else if err := replaceFile(dest, out); err != nil {
		return err
	}
	fmt.Fprintf(report, "signed %s: version %d, key %s -> %s\n", o.File, line.Version, line.KeyID, dest)
	return nil
}

// defaultVersion is now in Unix seconds, or one more than the previous
// signature's version when that is not older: two signings in one second,
// or a version chosen by hand, still go forward.
func defaultVersion(now time.Time, previous *configsign.Line) int64 {
	v := now.Unix()
	if previous != nil && previous.Version >= v {
		v = previous.Version + 1
	}
	return v
}

// replaceFile writes data to path through a temporary file in the same
// directory and a rename, keeping an existing file's mode, so a reader
// never sees half a document.
func replaceFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err = tmp.Write(data); err == nil {
		if err = tmp.Chmod(mode); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

func newKeygenCmd(a *app) *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen --out NAME",
		Short: "make an ed25519 key pair for signing configs",
		Long: `Makes an ed25519 key pair for signing configurations: NAME.key (the private
key, mode 0600: keep it off the gateways) and NAME.pub (the public key: put
its line in remote_config.public_keys). Existing files are never
overwritten. Prints the key id that signatures name.`,
		Example: `  edgegate keygen --out ops   # ops.key and ops.pub`,
		GroupID: groupGateway,
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			if o.Out == "" {
				return usageError("--out NAME is required")
			}
			return keygen(o, a.stdout)
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "", "write `NAME`.key and NAME.pub")
	cmd.MarkFlagFilename("out")
	return cmd
}

// newConfigSignCmd is "config sign", a subcommand of the config group.
func newConfigSignCmd(a *app) *cobra.Command {
	o := signOptions{Now: time.Now}
	cmd := &cobra.Command{
		Use:   "sign --key NAME.key [--version N] [--detached] [-o OUT] FILE",
		Short: "sign a configuration file (embedded or detached signature)",
		Long: `Signs a configuration file with an ed25519 private key (see keygen). The
signature line

  # edgegate-signature: v1 version=N key=KEYID sig=...

is written as the file's last line (a YAML comment; an existing signature
line is replaced), or with --detached alone into FILE.sig (send it as the
Edgegate-Signature header). The version defaults to the current Unix time
in seconds (or one more than the file's previous signature, if that is
newer); a gateway refuses a version older than the one it runs. The file is
rewritten in place unless -o names another file (- for stdout).`,
		Example: `  edgegate config sign --key ops.key gw-1.yaml
  edgegate config sign --key ops.key --detached --version 1796175700 gw-2.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("want one FILE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Key == "" {
				return usageError("--key is required")
			}
			if cmd.Flags().Changed("version") && o.Version <= 0 {
				return usageError("--version %d: must be > 0", o.Version)
			}
			o.File = args[0]
			return signConfig(o, a.stdout, a.stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Key, "key", "", "private key file (`NAME.key` from keygen)")
	f.Int64Var(&o.Version, "version", 0, "the version to sign, > 0 (default: the current Unix time)")
	f.BoolVar(&o.Detached, "detached", false, "write the signature line to FILE.sig instead of into FILE")
	f.StringVarP(&o.Out, "output", "o", "", "write to `OUT` instead (- for stdout)")
	cmd.MarkFlagFilename("key", "key")
	return cmd
}
