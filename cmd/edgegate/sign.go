package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/edgegate/edgegate/configsign"
)

const keygenUsage = `Usage: edgegate keygen --out NAME

Makes an ed25519 key pair for signing configurations: NAME.key (the private
key, mode 0600: keep it off the gateways) and NAME.pub (the public key: put
its line in remote_config.public_keys). Existing files are never
overwritten. Prints the key id that signatures name.

Flags:
`

// keygenOptions are the flags of keygen.
type keygenOptions struct {
	Out string // NAME: writes NAME.key and NAME.pub
}

// cmdKeygen runs `edgegate keygen`.
func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", keygenUsage, stderr)
	var o keygenOptions
	fs.StringVar(&o.Out, "out", "", "write NAME.key and NAME.pub")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Out == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, "edgegate keygen: --out NAME is required and takes no arguments\n\n")
		fs.Usage()
		return errUsage
	}
	return keygen(o, stdout)
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

const configSignUsage = `Usage: edgegate config sign --key NAME.key [--version N] [--detached] [-o OUT] FILE

Signs a configuration file with an ed25519 private key (see keygen). The
signature line

  # edgegate-signature: v1 version=N key=KEYID sig=...

is written as the file's last line (a YAML comment; an existing signature
line is replaced), or with --detached alone into FILE.sig (send it as the
Edgegate-Signature header). The version defaults to the current Unix time
in seconds (or one more than the file's previous signature, if that is
newer); a gateway refuses a version older than the one it runs. The file is
rewritten in place unless -o names another file (- for stdout).

Flags:
`

// signOptions are the flags and argument of config sign.
type signOptions struct {
	Key      string // private key file
	Version  int64  // 0: now (see defaultVersion)
	Detached bool
	Out      string // "" = FILE (embedded) or FILE.sig (detached); "-" = stdout
	File     string
	Now      func() time.Time
}

// cmdConfig runs `edgegate config SUBCOMMAND`.
func cmdConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "sign" {
		fmt.Fprint(stderr, "Usage: edgegate config sign [flags] FILE\n")
		return errUsage
	}
	fs := newFlagSet("config sign", configSignUsage, stderr)
	o := signOptions{Now: time.Now}
	fs.StringVar(&o.Key, "key", "", "private key file (NAME.key from keygen)")
	fs.Int64Var(&o.Version, "version", 0, "the version to sign (> 0; default: the current Unix time)")
	fs.BoolVar(&o.Detached, "detached", false, "write the signature line to FILE.sig instead of into FILE")
	fs.StringVar(&o.Out, "o", "", "write to OUT instead (- for stdout)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if o.Key == "" || fs.NArg() != 1 {
		fmt.Fprint(stderr, "edgegate config sign: --key and one FILE are required\n\n")
		fs.Usage()
		return errUsage
	}
	if setFlag(fs, "version") && o.Version <= 0 {
		fmt.Fprintf(stderr, "edgegate config sign: --version %d: must be > 0\n", o.Version)
		return errUsage
	}
	o.File = fs.Arg(0)
	return signConfig(o, stdout, stderr)
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

// setFlag reports whether the command line set the flag name.
func setFlag(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
