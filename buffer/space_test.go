package buffer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func reserveExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, reserveName))
	return err == nil
}

// The floor under which appends are refused is min_free_bytes plus
// Badger's worst case for what is stored: it rises with the data.
func TestDiskFloorRisesWithWhatIsStored(t *testing.T) {
	cfg := testConfig(t)
	b := open(t, cfg, nil, WithDiskFree(func(string) (int64, error) { return 1 << 40, nil }))
	stop := run(t, b)
	defer stop()
	b.checkDisk(context.Background())
	empty := b.Stats().DiskFloor
	if empty < int64(cfg.MinFreeBytes)+badgerFixed {
		t.Fatalf("floor of an empty buffer %d, want at least min_free_bytes + %d", empty, badgerFixed)
	}
	for range 40 { // 12 MiB: memtables flushed into tables
		recs := make([]Record, 1000)
		for i := range recs {
			recs[i] = rec("q", strings.Repeat("x", 300))
		}
		appendT(t, b, recs...)
	}
	b.checkDisk(context.Background())
	u, _ := scanUsage(cfg.Dir)
	if got := b.Stats().DiskFloor; got < empty+u.tables || u.tables == 0 {
		t.Fatalf("floor %d with %d bytes of tables, want at least %d", got, u.tables, empty+u.tables)
	}
}

// Open gives up the reserve when the disk is too full for Badger without
// it, refuses with ErrNoSpace (before Badger touches anything) when that is
// not enough, and the reserve comes back once there is room for it.
func TestOpenNearAFullDisk(t *testing.T) {
	cfg := testConfig(t)
	var free atomic.Int64
	free.Store(1 << 40)
	fake := WithDiskFree(func(string) (int64, error) { return free.Load(), nil })
	b, err := Open(cfg, nil, nil, fake)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, b)
	appendT(t, b, rec("q", "kept"))
	stop()
	b.Close()
	if !reserveExists(cfg.Dir) {
		t.Fatal("no reserve allocated on a roomy disk")
	}

	free.Store(1 << 20)
	if _, err := Open(cfg, nil, nil, fake); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Open with 1 MiB free = %v, want ErrNoSpace", err)
	}
	if reserveExists(cfg.Dir) {
		t.Fatal("reserve kept although Badger lacked room")
	}

	// Room for Badger but not for min_free_bytes: open, refuse appends,
	// deliver.
	u, _ := scanUsage(cfg.Dir)
	free.Store(u.headroom())
	b = open(t, cfg, nil, fake)
	stop = run(t, b)
	if err := b.Append(context.Background(), []Record{rec("q", "new")}, true); !errors.Is(err, ErrFull) {
		t.Fatalf("Append below the floor = %v, want ErrFull", err)
	}
	q := queueT(t, b, "q")
	bt := nextT(t, q, 10, 0)
	want(t, bt, "kept")
	if err := bt.Ack(); err != nil {
		t.Fatal(err)
	}

	// Space comes back: appends resume, the reserve is allocated again.
	free.Store(1 << 40)
	b.checkDisk(context.Background())
	appendT(t, b, rec("q", "new"))
	if !reserveExists(cfg.Dir) {
		t.Fatal("reserve not allocated again once space came back")
	}
	stop()
}
