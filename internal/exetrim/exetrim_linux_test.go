package exetrim

import (
	"errors"
	"testing"
)

// The test binary's own code is resident while it runs; Trim hands most
// of it back, and what runs after faults back in.
func TestTrim(t *testing.T) {
	before, after, err := Trim()
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if before < 1<<20 {
		t.Fatalf("the test binary's mappings held %d bytes before Trim, want over 1 MiB", before)
	}
	if after > before/2 {
		t.Fatalf("resident %d bytes before Trim, %d after: want less than half", before, after)
	}
	now, err := Resident()
	if err != nil || now <= 0 {
		t.Fatalf("Resident = %d, %v", now, err)
	}
	t.Logf("resident: %d KiB before, %d KiB after, %d KiB now", before>>10, after>>10, now>>10)

	// Readahead is off on every read-only mapping of the executable
	// (VmFlags "rr": MADV_RANDOM), so the code that faults back comes
	// page by page.
	exe, err := executable()
	if err != nil {
		t.Fatal(err)
	}
	maps, err := mappings(exe)
	if err != nil {
		t.Fatal(err)
	}
	mapped, random := len(maps), 0
	for _, m := range maps {
		if m.random {
			random++
		}
	}
	if mapped == 0 || random != mapped {
		t.Fatalf("%d of the executable's %d read-only mappings have readahead off (VmFlags rr), want all", random, mapped)
	}
}
