package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// damagedBuffer writes n records of 300 bytes (one queue, every record
// distinct) and returns the config; crashed leaves the buffer as kill -9
// would (its last writes only in the memtable log): a copy of the files
// taken while it is open.
func damagedBuffer(t *testing.T, n int, crashed bool) Config {
	t.Helper()
	cfg := testConfig(t)
	b := open(t, cfg, nil)
	stop := run(t, b)
	for i := 0; i < n; i += 1000 {
		recs := make([]Record, min(1000, n-i))
		for j := range recs {
			recs[j] = Record{Queue: "uplink.cloud", Data: fmt.Appendf(nil, "%06d%s", i+j, strings.Repeat("x", 294))}
		}
		if err := b.Append(context.Background(), recs, true); err != nil {
			t.Fatal(err)
		}
	}
	if !crashed {
		stop()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	img := Config(cfg)
	img.Dir = filepath.Join(t.TempDir(), "crashed")
	for try := 0; ; try++ {
		err := crashImage(cfg.Dir, img.Dir)
		if err == nil {
			return img
		}
		if try == 100 {
			t.Fatal(err)
		}
	}
}

// crashImage copies the files of the open buffer in dir to img, as kill -9
// would leave them. Badger flushes memtables and compacts in goroutines of
// its own after Append returns, creating tables and deleting memtable logs
// and tables: a copy taken while one of those ran (a file vanished, or the
// file names changed meanwhile) is no image of any moment, and crashImage
// fails so that the caller takes another.
func crashImage(dir, img string) error {
	names := func() []string {
		var out []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != "LOCK" {
				out = append(out, e.Name())
			}
		}
		return out
	}
	if err := os.RemoveAll(img); err != nil {
		return err
	}
	if err := os.Mkdir(img, 0o750); err != nil {
		return err
	}
	before := names()
	for _, name := range before {
		if err := copyFile(filepath.Join(dir, name), filepath.Join(img, name)); err != nil {
			return err
		}
	}
	if after := names(); !slices.Equal(before, after) {
		return fmt.Errorf("buffer files changed while copying: %v, then %v", before, after)
	}
	return nil
}

// files returns the names in dir with suffix.
func files(t *testing.T, dir, suffix string) []string {
	t.Helper()
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// drain reads every record of every queue and returns how many there are
// and whether they are distinct.
func drain(t *testing.T, cfg Config) (n int, distinct bool) {
	t.Helper()
	b := open(t, cfg, nil)
	defer b.Close()
	seen := map[string]bool{}
	for name, st := range b.Stats().Queues {
		q := queueT(t, b, name)
		for got := int64(0); got < st.Records; {
			bt := nextT(t, q, 1000, 0)
			for _, r := range bt.Records() {
				seen[string(r[:6])] = true
				n++
				got++
			}
		}
	}
	return n, len(seen) == n
}

func TestCheckHealthyBuffer(t *testing.T) {
	cfg := damagedBuffer(t, 20000, true)
	r, err := Check(cfg.Dir, nil)
	if err != nil || len(r.Problems) > 0 {
		t.Fatalf("Check = %+v, %v; want no problems", r, err)
	}
	if r.Records != 20000 || r.Queues["uplink.cloud"].Records != 20000 {
		t.Fatalf("Check counted %d records (%v), want 20000", r.Records, r.Queues)
	}
	if n := len(files(t, filepath.Dir(cfg.Dir), ".scratch")); n > 0 {
		t.Fatalf("Check left its scratch copy behind")
	}
}

// A truncated table made Badger panic in a goroutine of its own, killing
// the process at every start; Open now refuses with ErrDamaged, Check says
// which file, and Repair carries every record of the other tables over.
func TestTruncatedTable(t *testing.T) {
	cfg := damagedBuffer(t, 30000, false)
	tables := files(t, cfg.Dir, ".sst")
	if len(tables) < 3 {
		t.Fatalf("want several tables, got %d", len(tables))
	}
	// The first table holds the queue's name: the salvaged records of a
	// queue whose name is lost land in a queue of their own.
	fi, _ := os.Stat(tables[1])
	if err := os.Truncate(tables[1], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg, nil, nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), filepath.Base(tables[1])) {
		t.Fatalf("Open = %v, want ErrDamaged naming %s", err, filepath.Base(tables[1]))
	}
	r, err := Check(cfg.Dir, nil)
	if err != nil || len(r.Problems) == 0 || len(r.Left) != 1 || r.Left[0] != filepath.Base(tables[1]) {
		t.Fatalf("Check = %+v, %v; want the truncated table reported", r, err)
	}
	r, err = Repair(cfg.Dir, nil)
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if r.Records == 0 || r.Records >= 30000 || r.Damaged == "" {
		t.Fatalf("Repair = %+v; want most records salvaged and the damaged buffer kept", r)
	}
	if _, err := os.Stat(filepath.Join(r.Damaged, filepath.Base(tables[1]))); err != nil {
		t.Fatalf("damaged buffer not kept aside: %v", err)
	}
	n, distinct := drain(t, cfg)
	if int64(n) != r.Records || !distinct {
		t.Fatalf("repaired buffer holds %d records (distinct %v), Repair reported %d", n, distinct, r.Records)
	}
	t.Logf("salvaged %d of 30000 records; lost with the table: %d; left behind %v", n, 30000-n, r.Left)
}

// The table holding a queue's name is lost: its other records are
// salvaged into a queue of their own, and the report says how to send
// them.
func TestLostQueueName(t *testing.T) {
	cfg := damagedBuffer(t, 30000, false)
	var named string
	for _, path := range files(t, cfg.Dir, ".sst") {
		mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := table.OpenTable(mf, table.Options{Compression: options.None})
		if err != nil {
			t.Fatal(err)
		}
		// The table that holds the queue names (the counts saved at
		// Close may sit in another table that starts with a meta key).
		names := []byte{prefixMeta, metaQueue}
		it := tb.NewIterator(0)
		it.Seek(y.KeyWithTs(names, math.MaxUint64))
		if it.Valid() && bytes.HasPrefix(y.ParseKey(it.Key()), names) {
			named = path
		}
		it.Close()
		mf.Close(-1)
	}
	if named == "" {
		t.Fatal("no table holds the queue names")
	}
	if err := os.Truncate(named, 100); err != nil {
		t.Fatal(err)
	}
	r, err := Repair(cfg.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Queues["salvaged.1"].Records == 0 || !strings.Contains(strings.Join(r.Problems, "\n"), "buffer replay --queue salvaged.1") {
		t.Fatalf("Repair = %+v; want the nameless records in queue salvaged.1 and how to send them", r)
	}
	if n, distinct := drain(t, cfg); int64(n) != r.Records || !distinct {
		t.Fatalf("repaired buffer holds %d records (distinct %v), Repair reported %d", n, distinct, r.Records)
	}
}

// Without its MANIFEST Badger starts afresh and deletes every table; Open
// refuses instead, and Repair gets every record back, the ones only in the
// memtable log of a crashed gateway included.
func TestLostManifest(t *testing.T) {
	cfg := damagedBuffer(t, 20000, true)
	if len(files(t, cfg.Dir, ".mem")) == 0 {
		t.Fatal("want a crash image with a memtable log")
	}
	if err := os.Remove(filepath.Join(cfg.Dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg, nil, nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "no MANIFEST") {
		t.Fatalf("Open = %v, want ErrDamaged: no MANIFEST", err)
	}
	if len(files(t, cfg.Dir, ".sst")) == 0 {
		t.Fatal("Open deleted the tables")
	}
	r, err := Repair(cfg.Dir, nil)
	if err != nil || r.Records != 20000 {
		t.Fatalf("Repair = %+v, %v; want all 20000 records", r, err)
	}
	if n, distinct := drain(t, cfg); n != 20000 || !distinct {
		t.Fatalf("repaired buffer holds %d records (distinct %v), want 20000", n, distinct)
	}
}

// A MANIFEST torn by a crash mid-write: Open fails with an error (not a
// crash), Check reports it, Repair salvages every record.
func TestGarbledManifest(t *testing.T) {
	cfg := damagedBuffer(t, 20000, false)
	path := filepath.Join(cfg.Dir, "MANIFEST")
	data, _ := os.ReadFile(path)
	for i := len(data) / 2; i < len(data); i++ {
		data[i] ^= 0x5a
	}
	os.WriteFile(path, data, 0o600)
	if _, err := Open(cfg, nil, nil); err == nil {
		t.Fatal("Open of a garbled MANIFEST succeeded")
	}
	r, err := Check(cfg.Dir, nil)
	if err != nil || len(r.Problems) == 0 {
		t.Fatalf("Check = %+v, %v; want the MANIFEST reported", r, err)
	}
	r, err = Repair(cfg.Dir, nil)
	if err != nil || r.Records != 20000 {
		t.Fatalf("Repair = %+v, %v; want all 20000 records", r, err)
	}
	if n, distinct := drain(t, cfg); n != 20000 || !distinct {
		t.Fatalf("repaired buffer holds %d records (distinct %v), want 20000", n, distinct)
	}
}

// Check and Repair leave a buffer a gateway has open alone.
func TestCheckRefusesABufferInUse(t *testing.T) {
	cfg := testConfig(t)
	open(t, cfg, nil)
	if _, err := Check(cfg.Dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check of an open buffer = %v, want ErrLocked", err)
	}
	if _, err := Repair(cfg.Dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("Repair of an open buffer = %v, want ErrLocked", err)
	}
}
