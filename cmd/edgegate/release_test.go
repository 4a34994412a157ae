package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The README's promise for "make release": stripped static binaries for
// every target, stamped with version, commit and date, install archives,
// and SHA256SUMS that sha256sum -c accepts. The host's target and armv6 are
// built here (the other two differ only in GOARCH).
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds release binaries")
	}
	if os.Getenv("GOWORK") == "" {
		t.Skip("run through make: release builds need GOWORK=build/go.work (the patched ristretto)")
	}
	host := runtime.GOARCH
	if host != "amd64" && host != "arm64" {
		t.Skipf("no release target for host %s", host)
	}
	out := t.TempDir()
	cmd := exec.Command("../../scripts/release.sh")
	cmd.Env = append(os.Environ(), "RELEASE_TARGETS="+host+" armv6", "RELEASE_DIR="+out, "VERSION=v0.0.0-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}

	sums := readSums(t, filepath.Join(out, "SHA256SUMS"))
	if len(sums) != 4 {
		t.Fatalf("SHA256SUMS lists %d files, want 4: %v", len(sums), sums)
	}
	for name, want := range sums {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != want {
			t.Errorf("%s: checksum does not match SHA256SUMS", name)
		}
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armv6": elf.EM_ARM}
	for _, target := range []string{host, "armv6"} {
		bin := filepath.Join(out, "edgegate-linux-"+target)
		checkStaticStripped(t, bin, machines[target])
		checkArchive(t, filepath.Join(out, "edgegate-v0.0.0-test-linux-"+target+".tar.gz"))
	}

	v, err := exec.Command(filepath.Join(out, "edgegate-linux-"+host), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	commit, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"edgegate v0.0.0-test", "commit " + strings.TrimSpace(string(commit)), "built 20"} {
		if !strings.Contains(string(v), want) {
			t.Errorf("version prints %q, want it to contain %q", v, want)
		}
	}
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		sums[name] = sum
	}
	return sums
}

// checkStaticStripped: no ELF interpreter (static), no symbol table
// (stripped), built for machine.
func checkStaticStripped(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has an ELF interpreter: not static", path)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: has a symbol table: not stripped", path)
	}
}

// checkArchive: the install archive holds the binary (executable), the
// shipped configs, the install and uninstall scripts and the README.
func checkArchive(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := strings.TrimSuffix(filepath.Base(path), ".tar.gz") + "/"
	want := map[string]bool{"edgegate": true, "configs/edgegate.yaml": true, "configs/edgegate.schema.json": true, "scripts/install.sh": true, "scripts/uninstall.sh": true, "README.md": true, "docs/config.md": true}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, dir)
		if want[name] && (strings.HasSuffix(name, ".md") || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".json") || h.Mode&0o111 != 0) {
			delete(want, name)
		}
	}
	if len(want) > 0 {
		t.Errorf("%s: missing (or not executable) %v", path, want)
	}
}
