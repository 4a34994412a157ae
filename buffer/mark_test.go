package buffer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A mark is committed with its records and survives a reopen.
func TestMarkSurvivesReopen(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	if err := b.Append(context.Background(), []Record{{Queue: "q", Data: []byte("r")}}, true, Mark{Key: []byte("client\x00\x01"), Value: 42}); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Mark([]byte("client\x00\x02")); ok {
		t.Fatal("absent mark found")
	}
	b = reopen(t, b, stop, cfg)
	if v, ok := b.Mark([]byte("client\x00\x01")); !ok || v != 42 {
		t.Fatalf("mark after reopen: %v %v", v, ok)
	}
	if st := b.Stats(); st.Records != 1 {
		t.Fatalf("marks must not count as records: %+v", st)
	}
}

// Only the most recent max marks are kept; a newer mark with the same key
// wins, and eviction of its older slot does not remove it.
func TestMarkWindow(t *testing.T) {
	x := newMarkIndex(4)
	add := func(key string, val uint64) { x.remember([]Mark{{Key: []byte(key), Value: val}}) }
	get := func(key string) uint64 { v, _ := x.get(markHash([]byte(key))); return v }
	add("a", 1)
	add("b", 1)
	add("a", 2) // replaces a
	add("c", 1)
	add("d", 1) // evicts slot 0 (old a, superseded): a stays
	if v := get("a"); v != 2 {
		t.Fatalf("a = %d", v)
	}
	add("e", 1) // evicts b
	if _, ok := x.get(markHash([]byte("b"))); ok {
		t.Fatal("b survived eviction")
	}
	add("f", 1) // evicts a (inserted third)
	if _, ok := x.get(markHash([]byte("a"))); ok {
		t.Fatal("a survived eviction")
	}
	if len(x.index) != 4 {
		t.Fatalf("index holds %d marks, want 4", len(x.index))
	}
}

// A mark outlives its record's ack, also across a restart (the index is
// saved when Run returns); the data is returned without it.
func TestMarkOutlivesAckAndSurvivesReopen(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	ctx := context.Background()
	recs := []Record{{Queue: "q", Data: []byte("one")}, {Queue: "q", Data: []byte("two")}}
	if err := b.Append(ctx, recs[:1], true, Mark{Key: []byte("k1"), Value: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(ctx, recs[1:], true, Mark{Key: []byte("k2"), Value: 2}); err != nil {
		t.Fatal(err)
	}
	q, _ := b.Queue("q")
	batch, err := q.Next(ctx, 1, 0)
	if err != nil || string(batch.Records()[0]) != "one" {
		t.Fatalf("Next: %v %q", err, batch.Records())
	}
	if err := batch.Ack(); err != nil {
		t.Fatal(err)
	}
	if v, ok := b.Mark([]byte("k1")); !ok || v != 1 {
		t.Fatalf("mark of an acked record: %v %v", v, ok)
	}
	if st := b.Stats(); st.Records != 1 || st.Bytes != int64(len("two"))+markSize {
		t.Fatalf("stats: %+v", st)
	}
	b = reopen(t, b, stop, cfg)
	if v, ok := b.Mark([]byte("k2")); !ok || v != 2 {
		t.Fatalf("mark after reopen: %v %v", v, ok)
	}
	if v, ok := b.Mark([]byte("k1")); !ok || v != 1 {
		t.Fatalf("mark of a record acked before the restart: %v %v", v, ok)
	}
	q, _ = b.Queue("q")
	batch, err = q.Next(ctx, 10, 0)
	if err != nil || len(batch.Records()) != 1 || string(batch.Records()[0]) != "two" {
		t.Fatalf("after reopen: %v %q", err, batch.Records())
	}
}

// A mark outlives its record's ack also in a crash: the ack writes the
// marks not saved yet with its deletes. The crash is a copy of the
// directory taken while the buffer is open, after the ack returned (what a
// power cut leaves: everything fsync'd, nothing saved at shutdown).
func TestMarkOfAckedRecordSurvivesCrash(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	run(t, b)
	ctx := context.Background()

	q, _ := b.Queue("q")
	for i, key := range []string{"k1", "k2", "k3"} {
		rec := []Record{{Queue: "q", Data: []byte(key)}}
		if err := b.Append(ctx, rec, true, Mark{Key: []byte(key), Value: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		batch, err := q.Next(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	crashed := testConfig(t)
	copyDir(t, cfg.Dir, crashed.Dir)

	c := open(t, crashed, nil)
	for i, key := range []string{"k1", "k2", "k3"} {
		if v, ok := c.Mark([]byte(key)); !ok || v != uint64(i+1) {
			t.Errorf("mark %s of a record acked before the crash: %v %v", key, v, ok)
		}
	}
	if st := c.Stats(); st.Records != 0 {
		t.Errorf("acked records came back: %+v", st)
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A full save of the index replaces the deltas acks wrote.
func TestMarkSaveRemovesDeltas(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	ctx := context.Background()
	q, _ := b.Queue("q")
	for i := range 3 {
		if err := b.Append(ctx, []Record{{Queue: "q", Data: []byte("r")}}, true, Mark{Key: []byte{byte(i)}, Value: 7}); err != nil {
			t.Fatal(err)
		}
		batch, err := q.Next(ctx, 10, 0)
		if err != nil || batch.Ack() != nil {
			t.Fatal("next/ack", err)
		}
	}
	deltas := func() (n int) {
		b.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixMeta, metaMarkDelta}})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		})
		return n
	}
	if n := deltas(); n != 3 {
		t.Fatalf("%d deltas after 3 acks of marked records, want 3", n)
	}
	b.saveMarks()
	if n := deltas(); n != 0 {
		t.Fatalf("%d deltas after a full save", n)
	}
	b = reopen(t, b, stop, cfg)
	for i := range 3 {
		if v, ok := b.Mark([]byte{byte(i)}); !ok || v != 7 {
			t.Errorf("mark %d after reopen: %v %v", i, v, ok)
		}
	}
}
