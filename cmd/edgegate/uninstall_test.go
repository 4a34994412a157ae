package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// scripts/uninstall.sh removes the binary and the unit, keeps the config and
// the buffer unless --purge. It runs on a scratch tree (UNINSTALL_ROOT)
// laid out as scripts/install.sh leaves a machine.
func TestUninstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("uninstall.sh refuses to run without root")
	}
	files := []string{"usr/local/bin/edgegate", "etc/systemd/system/edgegate.service", "etc/edgegate/edgegate.yaml", "var/lib/edgegate/buffer/MANIFEST"}
	for _, tc := range []struct {
		args []string
		kept []string
	}{
		{nil, files[2:]},
		{[]string{"--purge"}, nil},
	} {
		root := t.TempDir()
		for _, f := range files {
			p := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("../../scripts/uninstall.sh", tc.args...)
		cmd.Env = append(os.Environ(), "UNINSTALL_ROOT="+root)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("uninstall.sh %v: %v\n%s", tc.args, err, b)
		}
		kept := map[string]bool{}
		for _, f := range tc.kept {
			kept[f] = true
		}
		for _, f := range files {
			_, err := os.Stat(filepath.Join(root, f))
			if exists := err == nil; exists != kept[f] {
				t.Errorf("uninstall.sh %v: %s exists=%v, want %v", tc.args, f, exists, kept[f])
			}
		}
	}
}
