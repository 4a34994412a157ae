package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/badger/v4"

	"github.com/edgegate/edgegate/internal/faults"
)

// noCompactions keeps Badger from compacting: a compaction that reads a
// damaged block panics in Badger's goroutine, killing the test binary, or
// carries the damage into a new table with good checksums, hiding it from
// the test. The gateway meets the first case through its crash-loop
// check (TestCrashLoopChecksEveryBlock); these tests must not.
func noCompactions(b *Buffer) {
	b.tune = func(o badger.Options) badger.Options {
		return o.WithNumCompactors(0).WithNumLevelZeroTables(1 << 20).WithNumLevelZeroTablesStall(1<<20 + 1)
	}
}

// garbleBlockEnds damages n blocks of the table at path (faults.GarbleBlocks).
func garbleBlockEnds(t *testing.T, path string, n int) {
	t.Helper()
	if got, err := faults.GarbleBlocks(path, n); err != nil || got != n {
		t.Fatalf("GarbleBlocks = %d, %v; want %d", got, err, n)
	}
}

// A damaged block that the MANIFEST's index check cannot see used to panic
// while the buffer loaded its records, killing the gateway at every start.
// Open now refuses with ErrDamaged; Check finds the table and Repair
// salvages the records of every other block, of that table too.
func TestDamagedBlockAtOpen(t *testing.T) {
	cfg := damagedBuffer(t, 30000, false)
	tables := files(t, cfg.Dir, ".sst")
	garbleBlockEnds(t, tables[1], 3)
	if _, err := Open(cfg, nil, nil, noCompactions); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "reading records") {
		t.Fatalf("Open = %v, want ErrDamaged while reading records", err)
	}
	r, err := Check(cfg.Dir, nil)
	if err != nil || len(r.Left) != 1 || r.Left[0] != filepath.Base(tables[1]) {
		t.Fatalf("Check = %+v, %v; want the damaged table reported", r, err)
	}
	r, err = Repair(cfg.Dir, nil)
	// A 4 KiB block holds 13 of these records: the damaged table's other
	// blocks are salvaged too.
	if err != nil || r.BlocksLost != 3 || r.Records < 30000-3*13 || r.Records >= 30000 {
		t.Fatalf("Repair = %+v, %v; want every record but those of the 3 damaged blocks", r, err)
	}
	n, distinct := drain(t, cfg)
	if int64(n) != r.Records || !distinct {
		t.Fatalf("repaired buffer holds %d records (distinct %v), Repair reported %d", n, distinct, r.Records)
	}
	t.Logf("salvaged %d of 30000 records", n)
}

// Damage that appears under a running buffer: Next reports ErrDamaged
// instead of panicking, and the buffer refuses new records and says why.
func TestDamagedBlockWhileRunning(t *testing.T) {
	cfg := testConfig(t)
	m := metrics.NewSet()
	b := open(t, cfg, m, noCompactions)
	stop := run(t, b)
	defer func() {
		stop()
		b.Close()
	}()
	for i := 0; i < 30000; i += 1000 {
		recs := make([]Record, 1000)
		for j := range recs {
			recs[j] = Record{Queue: "uplink.cloud", Data: fmt.Appendf(nil, "%06d%s", i+j, strings.Repeat("x", 294))}
		}
		if err := b.Append(context.Background(), recs, true); err != nil {
			t.Fatal(err)
		}
	}
	var tables []string
	for deadline := time.Now().Add(30 * time.Second); len(tables) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("memtables never flushed to tables")
		}
		tables = files(t, cfg.Dir, ".sst")
	}
	for _, tb := range tables {
		garbleBlockEnds(t, tb, 3)
	}
	q := queueT(t, b, "uplink.cloud")
	var err error
	for range 100 {
		var bt *Batch
		if bt, err = q.Next(context.Background(), 1000, 0); err != nil {
			break
		}
		if err := bt.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("Next = %v after reading every batch, want ErrDamaged", err)
	}
	if why := b.Refusing(); !strings.Contains(why, "buffer repair") {
		t.Fatalf("Refusing = %q, want the damage and the fix", why)
	}
	err = b.Append(context.Background(), []Record{{Queue: "uplink.cloud", Data: []byte("x")}}, true)
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("Append on a damaged buffer = %v, want ErrDamaged", err)
	}
	if v := metricValue(t, m, "edgegate_buffer_damaged"); v != "1" {
		t.Fatalf("edgegate_buffer_damaged = %q, want 1", v)
	}
}

// Damage Badger meets in its own goroutines (a compaction) kills the
// process before the buffer can catch it. Opened again twice without a
// clean run, the buffer checks every block's checksum before Badger sees
// the tables; a clean Close resets the count.
func TestCrashLoopChecksEveryBlock(t *testing.T) {
	cfg := damagedBuffer(t, 30000, false)
	if _, err := os.Stat(filepath.Join(cfg.Dir, startsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("start counter after a clean close: %v, want none", err)
	}
	// A few bytes of a record's value: no decoding trips on it, only a
	// checksum sees it.
	tables := files(t, cfg.Dir, ".sst")
	f, err := os.OpenFile(tables[1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if _, err := f.WriteAt([]byte("garbage!"), fi.Size()/3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for start := 1; start <= crashLoopStarts; start++ {
		b, err := Open(cfg, nil, nil, noCompactions)
		if err != nil {
			t.Fatalf("start %d: Open = %v; the damage is invisible without checksums", start, err)
		}
		b.db.Close() // as kill -9 leaves it: no clean Close
	}
	_, err = Open(cfg, nil, nil, noCompactions)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), filepath.Base(tables[1])) {
		t.Fatalf("start %d: Open = %v, want ErrDamaged naming %s", crashLoopStarts+1, err, filepath.Base(tables[1]))
	}
}
