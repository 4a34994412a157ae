package buffer

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// entries renders List's entries as "seq:data".
func entries(es []Entry) string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d:%s", e.Seq, e.Data))
	}
	return strings.Join(out, ",")
}

func listT(t *testing.T, b *Buffer, queue string, opts ListOptions) (string, uint64) {
	t.Helper()
	es, next, err := b.List(queue, opts)
	if err != nil {
		t.Fatalf("List(%s, %+v): %v", queue, opts, err)
	}
	return entries(es), next
}

func TestListGetQueues(t *testing.T) {
	clk := newFakeClock()
	b := open(t, testConfig(t), nil, WithClock(clk.now))
	run(t, b)
	start := clk.now()
	for i := 1; i <= 6; i++ {
		appendT(t, b, rec("a", fmt.Sprint("a", i)))
		clk.advance(time.Minute)
	}
	appendT(t, b, rec("b", "b1"))

	for _, tc := range []struct {
		name string
		opts ListOptions
		want string
		next uint64
	}{
		{"all", ListOptions{}, "1:a1,2:a2,3:a3,4:a4,5:a5,6:a6", 0},
		{"limit", ListOptions{Limit: 2}, "1:a1,2:a2", 3},
		{"from", ListOptions{From: 3, Limit: 2}, "3:a3,4:a4", 5},
		{"before", ListOptions{Before: 3}, "1:a1,2:a2", 0},
		{"since", ListOptions{Since: start.Add(4 * time.Minute)}, "5:a5,6:a6", 0},
		{"until", ListOptions{Until: start.Add(2 * time.Minute)}, "1:a1,2:a2", 0},
		{"since until", ListOptions{Since: start.Add(time.Minute), Until: start.Add(3 * time.Minute)}, "2:a2,3:a3", 0},
		{"max bytes", ListOptions{MaxBytes: 5}, "1:a1,2:a2", 3},
		{"max bytes first", ListOptions{MaxBytes: 1}, "1:a1", 2},
		{"no data", ListOptions{NoData: true, Limit: 1}, "1:", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next := listT(t, b, "a", tc.opts)
			if got != tc.want || next != tc.next {
				t.Fatalf("List = %s next %d, want %s next %d", got, next, tc.want, tc.next)
			}
		})
	}
	es, _, _ := b.List("a", ListOptions{Limit: 1})
	if es[0].Size != 2 || !es[0].Appended.Equal(start) {
		t.Fatalf("entry = %+v, want size 2 appended %v", es[0], start)
	}

	e, err := b.Get("a", 4)
	if err != nil || string(e.Data) != "a4" || !e.Appended.Equal(start.Add(3*time.Minute)) {
		t.Fatalf("Get(a, 4) = %+v, %v", e, err)
	}
	if _, err := b.Get("a", 40); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(a, 40) = %v, want ErrNotFound", err)
	}
	if _, _, err := b.List("nope", ListOptions{}); !errors.Is(err, ErrNoQueue) {
		t.Fatalf("List(nope) = %v, want ErrNoQueue", err)
	}
	if _, err := b.Delete("nope", []uint64{1}); !errors.Is(err, ErrNoQueue) {
		t.Fatalf("Delete(nope) = %v, want ErrNoQueue", err)
	}

	infos, err := b.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Name != "a" || infos[0].Records != 6 || infos[0].Bytes != 12 ||
		!infos[0].Oldest.Equal(start) || infos[0].Next != 7 || infos[1].Name != "b" || infos[1].Records != 1 {
		t.Fatalf("Queues = %+v", infos)
	}
	// Listing leases nothing.
	want(t, nextT(t, queueT(t, b, "a"), 2, 0), "a1", "a2")
}

func TestDelete(t *testing.T) {
	b := open(t, testConfig(t), nil)
	stop := run(t, b)
	for i := 1; i <= 6; i++ {
		appendT(t, b, rec("q", fmt.Sprint("r", i)))
	}
	appendT(t, b, rec("other", "o1"))
	q := queueT(t, b, "q")

	leased := nextT(t, q, 2, 0) // r1 r2
	n, err := b.Delete("q", []uint64{2, 4, 5, 99})
	if err != nil || n != 3 {
		t.Fatalf("Delete = %d, %v; want 3", n, err)
	}
	wantStats(t, b, 4, 8)
	if n, err := b.Delete("q", []uint64{2, 4}); err != nil || n != 0 {
		t.Fatalf("Delete again = %d, %v; want 0", n, err)
	}
	// The leased r2 was deleted: the ack removes r1 only, and counts it once.
	if err := leased.Ack(); err != nil {
		t.Fatal(err)
	}
	wantStats(t, b, 3, 6)
	// Never handed out: r4 and r5 are skipped.
	want(t, nextT(t, q, 10, 0), "r3", "r6")

	// A nacked record that is deleted is not handed out again.
	appendT(t, b, rec("q", "r7"), rec("q", "r8"))
	bt := nextT(t, q, 10, 0)
	want(t, bt, "r7", "r8")
	bt.Nack()
	if n, err := b.Delete("q", []uint64{7}); err != nil || n != 1 {
		t.Fatalf("Delete nacked = %d, %v", n, err)
	}
	want(t, nextT(t, q, 10, 0), "r8")

	got, _ := listT(t, b, "q", ListOptions{})
	if got != "3:r3,6:r6,8:r8" {
		t.Fatalf("List after deletes = %s", got)
	}
	b = reopen(t, b, stop, b.cfg)
	wantStats(t, b, 4, 8)
	got, _ = listT(t, b, "q", ListOptions{})
	if got != "3:r3,6:r6,8:r8" {
		t.Fatalf("List after reopen = %s", got)
	}
}

func TestReadOnly(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	appendT(t, b, rec("q", "r1"), rec("q", "r2"))

	// The running buffer holds the lock: a second opener is told so.
	for _, opts := range [][]Option{nil, {ReadOnly()}} {
		if _, err := Open(cfg, nil, nil, opts...); !errors.Is(err, ErrLocked) {
			t.Fatalf("Open while open (%d options) = %v, want ErrLocked", len(opts), err)
		}
	}
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	ro := open(t, cfg, nil, ReadOnly())
	got, _ := listT(t, ro, "q", ListOptions{})
	if got != "1:r1,2:r2" {
		t.Fatalf("List = %s", got)
	}
	wantStats(t, ro, 2, 4)
	if _, err := ro.Delete("q", []uint64{1}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Delete = %v, want ErrReadOnly", err)
	}
	if err := ro.Run(t.Context()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Run = %v, want ErrReadOnly", err)
	}
	// Two readers at once are fine; a writer is not.
	ro2 := open(t, cfg, nil, ReadOnly())
	ro2.Close()
	if _, err := Open(cfg, nil, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open for writing while read = %v, want ErrLocked", err)
	}

	empty := testConfig(t)
	if _, err := Open(empty, nil, nil, ReadOnly()); err == nil || !strings.Contains(err.Error(), "no buffer in") {
		t.Fatalf("Open(empty dir, ReadOnly) = %v", err)
	}
}

// A buffer left by a crash (a copy taken while it is open) cannot be read
// without a write; read-write, it opens and holds every record.
func TestReadOnlyAfterCrash(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	run(t, b)
	for range 10 {
		appendT(t, b, rec("q", "r"))
	}
	crashed := testConfig(t)
	copyDir(t, cfg.Dir, crashed.Dir)
	if _, err := Open(crashed, nil, nil, ReadOnly()); !errors.Is(err, ErrUnclean) {
		t.Fatalf("Open(crashed, ReadOnly) = %v, want ErrUnclean", err)
	}
	c := open(t, crashed, nil)
	wantStats(t, c, 10, 10)
}

func TestReservedQueueName(t *testing.T) {
	b := open(t, testConfig(t), nil)
	if _, err := b.Queue(RetainedName("q")); err == nil {
		t.Fatal("Queue(retained.q) succeeded")
	}
	if of, ok := IsRetained(RetainedName("uplink.cloud")); !ok || of != "uplink.cloud" {
		t.Fatalf("IsRetained = %q, %v", of, ok)
	}
	if _, ok := IsRetained("uplink.cloud"); ok {
		t.Fatal("IsRetained(uplink.cloud)")
	}
}
