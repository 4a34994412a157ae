package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The command line through the real binary: help where it is asked for
// (stdout, exit 0), usage errors on stderr with exit 2, the version both
// ways, and the single-dash long flags of Go's flag package still taken.
func TestCommandLineE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	bin := edgegateBinary(t)
	config := "../../configs/edgegate.yaml"
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, errs []string // substrings
	}{
		{nil, 2, nil, []string{"Usage:\n  edgegate COMMAND [flags]", "\n  status ", "\n  completion "}},
		{[]string{"help"}, 0, []string{"Run and operate a gateway:", "\n  run ", "\n  buffer "}, nil},
		{[]string{"--help"}, 0, []string{"Run and operate a gateway:"}, nil},
		{[]string{"nope"}, 2, nil, []string{`edgegate: unknown command "nope"`}},
		{[]string{"stauts"}, 2, nil, []string{"did you mean status?"}},
		{[]string{"version"}, 0, []string{"edgegate dev (commit unknown, built unknown) go"}, nil},
		{[]string{"--version"}, 0, []string{"edgegate dev (commit unknown, built unknown) go"}, nil},
		{[]string{"run", "-h"}, 0, []string{`(default "configs/edgegate.yaml")`, "a second one exits\nat once (status 130)", "Exit status: 0 after a clean stop, 1", "2 when the\nconfiguration is invalid"}, nil},
		{[]string{"validate", "-h"}, 0, []string{`(default "configs/edgegate.yaml")`, "file:line:col: field.path", "Exit status: 0 valid", "2 invalid"}, nil},
		{[]string{"status", "-h"}, 0, []string{"Exit status: 0 ready; 1 not ready", "--token-file file", "--json"}, nil},
		{[]string{"validate", "--nope"}, 2, nil, []string{"edgegate validate: unknown flag: --nope", `Run "edgegate validate --help"`}},
		{[]string{"validate", "extra"}, 2, nil, []string{`edgegate validate: unexpected argument "extra"`}},
		{[]string{"validate", "--config", config}, 0, []string{config + ": ok\n"}, nil},
		{[]string{"validate", "-c", config}, 0, []string{config + ": ok\n"}, nil},
		{[]string{"validate", "-config", config}, 0, []string{config + ": ok\n"}, nil},
		{[]string{"validate", "-config=" + config}, 0, []string{config + ": ok\n"}, nil},
		{[]string{"buffer", "stats", "-admin", "127.0.0.1:1"}, 1, nil, []string{"is the gateway running?", "on a stopped gateway use --config"}},
	} {
		out, errOut, code := cli(t, bin, tc.args...)
		if code != tc.code {
			t.Errorf("edgegate %q: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errOut)
			continue
		}
		for _, w := range tc.stdout {
			if !strings.Contains(out, w) {
				t.Errorf("edgegate %q: no %q in stdout\n%s", tc.args, w, out)
			}
		}
		for _, w := range tc.errs {
			if !strings.Contains(errOut, w) {
				t.Errorf("edgegate %q: no %q in stderr\n%s", tc.args, w, errOut)
			}
		}
	}
}

// `edgegate completion bash|zsh|fish` print scripts that register
// completion for edgegate; what they complete comes from the binary itself
// (cobra's __complete), so it is always the current command tree.
func TestCompletionE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	bin := edgegateBinary(t)
	cmd := exec.Command("bash", "-c", "source <(edgegate completion bash) && complete -p edgegate")
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "-F __start_edgegate edgegate") {
		t.Errorf("bash: %v\n%s", err, out)
	}
	for shell, want := range map[string]string{"zsh": "#compdef edgegate", "fish": "complete -c edgegate"} {
		if out := cliOK(t, bin, "completion", shell); !strings.Contains(out, want) || !strings.Contains(out, "__complete") {
			t.Errorf("%s: no %q in\n%.300s", shell, want, out)
		}
	}
	// What the scripts ask the binary: every command, then their flags and
	// YAML files for --config.
	out := cliOK(t, bin, "__complete", "")
	for _, c := range newRootCmd(&app{}).Commands() {
		if c.IsAvailableCommand() && !strings.Contains(out, "\n"+c.Name()+"\t") && !strings.HasPrefix(out, c.Name()+"\t") {
			t.Errorf("%s is not completed:\n%s", c.Name(), out)
		}
	}
	if out := cliOK(t, bin, "__complete", "buffer", ""); !strings.Contains(out, "replay\t") || !strings.Contains(out, "stats\t") {
		t.Errorf("buffer subcommands are not completed:\n%s", out)
	}
	if out := cliOK(t, bin, "__complete", "status", "--to"); !strings.Contains(out, "--token-file\t") {
		t.Errorf("status flags are not completed:\n%s", out)
	}
	if out := cliOK(t, bin, "__complete", "run", "--config", ""); !strings.Contains(out, "yaml\n") {
		t.Errorf("--config does not complete YAML files:\n%s", out)
	}
}
