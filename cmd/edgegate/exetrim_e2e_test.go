package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's promise (Performance): a second after it is ready the
// gateway hands back the pages of its executable, and its log says how
// much was resident before and after.
func TestExecutablePagesHandedBack(t *testing.T) {
	e := newE2E(t, "starts the real binary")
	// A copy of its own: the kernel pages out only pages no other process
	// maps (the other end-to-end tests run the shared binary), and only
	// clean ones: the copy is synced, as an installed binary is.
	bin, err := os.ReadFile(e.bin)
	if err != nil {
		t.Fatal(err)
	}
	e.bin = filepath.Join(t.TempDir(), "edgegate")
	f, err := os.OpenFile(e.bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	line := regexp.MustCompile(`handed the executable's pages back to the kernel" resident_before_bytes=(\d+) resident_after_bytes=(\d+)`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		log := p.log.String()
		if m := line.FindStringSubmatch(log); m != nil {
			before, _ := strconv.ParseInt(m[1], 10, 64)
			after, _ := strconv.ParseInt(m[2], 10, 64)
			if before < 4<<20 || after > before/2 {
				t.Fatalf("resident before %d bytes, after %d: want over 4 MiB before and less than half of it after", before, after)
			}
			t.Logf("executable resident: %d KiB -> %d KiB", before>>10, after>>10)
			return
		}
		if strings.Contains(log, "the executable's pages stay resident") {
			t.Skipf("no trim here: %s", log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trim logged 15 s after ready; log:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
