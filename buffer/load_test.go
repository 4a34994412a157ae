package buffer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// fillT appends n records of 10 bytes each to q, in appends of 100.
func fillT(t *testing.T, b *Buffer, q string, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		var recs []Record
		for j := i; j < min(n, i+100); j++ {
			recs = append(recs, rec(q, fmt.Sprintf("r%09d", j)))
		}
		appendT(t, b, recs...)
	}
}

// rawUpdate opens dir with Badger itself (as an older edgegate, or
// another tool, would write) and runs fn in one transaction.
func rawUpdate(t *testing.T, dir string, fn func(*badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badgerOptions(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// A clean stop saves the counts; the next Open uses them (nothing to
// count), and they match what a count finds.
func TestCountsSavedAtCleanStop(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	fillT(t, b, "a", 250)
	fillT(t, b, "b", 30)
	queueT(t, b, "empty")
	if err := nextT(t, queueT(t, b, "a"), 40, 0).Ack(); err != nil {
		t.Fatal(err)
	}
	wantStats(t, b, 240, 2400)
	b = reopen(t, b, stop, cfg)
	if b.count != nil || b.Stats().Counting {
		t.Fatal("counted the records again after a clean stop")
	}
	wantStats(t, b, 240, 2400)
	if s := b.Stats().Queues; s["a"].Records != 210 || s["b"].Records != 30 || s["empty"].Records != 0 {
		t.Fatalf("queues %+v", s)
	}
	// Appends continue after the old tail, oldest first.
	stop = run(t, b)
	fillT(t, b, "a", 1)
	bt := nextT(t, queueT(t, b, "a"), 1, 0)
	want(t, bt, "r000000040")
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Stats after the count agree with the saved ones.
	rawUpdate(t, cfg.Dir, func(txn *badger.Txn) error { return txn.Delete([]byte{prefixMeta, metaCounts}) })
	b = open(t, cfg, nil)
	if b.Stats().Counting {
		t.Fatal("Open without WithLazyCount returned before counting")
	}
	wantStats(t, b, 241, 2410)
}

// Saved counts are not used once anything was written after them: a
// writer that does not know them (an older edgegate) may have changed
// what is stored.
func TestSavedCountsOutdated(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	fillT(t, b, "a", 10)
	id := queueT(t, b, "a").id
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, cfg.Dir, func(txn *badger.Txn) error {
		// Out of order acks leave head and tail where they were.
		return txn.Delete(recKey(nil, id, 5))
	})
	b = open(t, cfg, nil)
	wantStats(t, b, 9, 90)
}

// After an unclean stop (no saved counts), WithLazyCount opens at once and
// Run counts the records: acks made before and during the count leave
// the accounting exact, and appends go on meanwhile.
func TestLazyCount(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	fillT(t, b, "a", 3*countChunk)
	fillT(t, b, "b", 5)
	b = reopen(t, b, stop, cfg)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, cfg.Dir, func(txn *badger.Txn) error { return txn.Delete([]byte{prefixMeta, metaCounts}) })

	b = open(t, cfg, nil, WithLazyCount())
	if s := b.Stats(); !s.Counting || s.Records != 0 {
		t.Fatalf("before Run: %+v, want counting from 0", s)
	}
	qa := queueT(t, b, "a")
	bt := nextT(t, qa, 10, 0)
	want(t, bt, "r000000000", "r000000001", "r000000002", "r000000003", "r000000004",
		"r000000005", "r000000006", "r000000007", "r000000008", "r000000009")
	if err := bt.Ack(); err != nil {
		t.Fatal(err)
	}
	stop = run(t, b)
	fillT(t, b, "b", 7)
	if err := nextT(t, qa, 20, 0).Ack(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Counting {
		if time.Now().After(deadline) {
			t.Fatal("still counting")
		}
		time.Sleep(5 * time.Millisecond)
	}
	total := int64(3*countChunk + 5 + 7 - 30)
	wantStats(t, b, total, 10*total)
	if s := b.Stats().Queues["b"]; s.Records != 12 {
		t.Fatalf("queue b: %+v", s)
	}
	// The counts are saved at the next clean stop.
	b = reopen(t, b, stop, cfg)
	if b.count != nil {
		t.Fatal("counted again after a clean stop")
	}
	wantStats(t, b, total, 10*total)
}

// A Run stopped at once may or may not finish the count; unfinished, it
// saves no counts and the next Open counts again: either way, right.
func TestLazyCountInterrupted(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	fillT(t, b, "a", 100)
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, cfg.Dir, func(txn *badger.Txn) error { return txn.Delete([]byte{prefixMeta, metaCounts}) })
	b = open(t, cfg, nil, WithLazyCount())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, cfg, nil)
	wantStats(t, b, 100, 1000)
}

// Pages read through Badger's table mappings are handed back: RssFile
// falls once trim runs, and the records still read back.
func TestTrimMappedTables(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 48 MB")
	}
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	data := make([]byte, 1000)
	for range 48 {
		var recs []Record
		for range 1000 {
			recs = append(recs, Record{Queue: "q", Data: data})
		}
		appendT(t, b, recs...)
	}
	b = reopen(t, b, stop, cfg)
	q := queueT(t, b, "q")
	// Read every record through the mappings, then hand them back.
	nextT(t, q, 48000, 0).Nack()
	before, err := rssFile()
	if err != nil {
		t.Skip(err)
	}
	tr := b.newTrimmer()
	b.trim(tr)
	if tr.off {
		t.Skip("no MADV_PAGEOUT")
	}
	after, _ := rssFile()
	if after > before-16<<20 {
		t.Fatalf("RssFile %d MiB before trim, %d MiB after", before>>20, after>>20)
	}
	if got := nextT(t, q, 48000, 0); len(got.Records()) != 48000 {
		t.Fatalf("read back %d records", len(got.Records()))
	}
}
