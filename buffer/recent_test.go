package buffer

import (
	"fmt"
	"strings"
	"testing"
)

// TestRecentSpill: records beyond what Next keeps in memory (recentMax)
// come from Badger, in order, without gaps or repeats, and later records
// come from memory again.
func TestRecentSpill(t *testing.T) {
	b := open(t, testConfig(t), nil)
	run(t, b)
	q := queueT(t, b, "q")
	pad := strings.Repeat("x", 1000)
	n := 2 * recentMax / len(pad)
	for i := range n {
		appendT(t, b, rec("q", fmt.Sprintf("%06d%s", i, pad)))
	}
	if q.recentBytes > recentMax {
		t.Fatalf("recent holds %d bytes, more than %d", q.recentBytes, recentMax)
	}
	got := 0
	check := func(bt *Batch) {
		t.Helper()
		for _, r := range bt.Records() {
			if want := fmt.Sprintf("%06d", got); string(r[:6]) != want {
				t.Fatalf("record %d is %q, want %q", got, r[:6], want)
			}
			got++
		}
		if err := bt.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	for got < n {
		check(nextT(t, q, 100, 0))
	}
	appendT(t, b, rec("q", fmt.Sprintf("%06d", n)))
	if len(q.recent) != 1 {
		t.Fatalf("recent holds %d records after catching up and one append, want 1", len(q.recent))
	}
	check(nextT(t, q, 100, 0))
	noNext(t, q)
}

// TestRecentDelete: a record deleted before it was leased is not handed
// out from memory.
func TestRecentDelete(t *testing.T) {
	b := open(t, testConfig(t), nil)
	run(t, b)
	q := queueT(t, b, "q")
	appendT(t, b, rec("q", "a"), rec("q", "b"), rec("q", "c"))
	if n, err := b.Delete("q", []uint64{2}); err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v; want 1, nil", n, err)
	}
	want(t, nextT(t, q, 10, 0), "a", "c")
}
