package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4/table"
)

// kill -9 between Badger creating a table file and adding it to the
// MANIFEST (a memtable flush or a compaction cut short) leaves a table file
// the MANIFEST does not list: empty (killed before the truncate to size),
// all zeros (before the copy) or half written. Its records are still in the
// memtable log or the source tables, and Badger deletes the file when it
// opens. Open refused such a buffer as damaged ("000002.sst: while mmapping
// ... with size: 0"), at every restart; now it opens with every record.
func TestUnlistedTableAfterKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		data func(table []byte) []byte // the orphan, from a real table
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"zeros", func(tb []byte) []byte { return make([]byte, len(tb)) }},
		{"half written", func(tb []byte) []byte {
			return append(slices.Clone(tb[:len(tb)/2]), make([]byte, len(tb)-len(tb)/2)...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := damagedBuffer(t, 20000, true)
			ssts := files(t, cfg.Dir, ".sst")
			if len(files(t, cfg.Dir, ".mem")) == 0 || len(ssts) == 0 {
				t.Fatal("want a crash image with tables and a memtable log")
			}
			var last uint64
			for _, p := range ssts {
				id, _ := table.ParseFileID(filepath.Base(p))
				last = max(last, id)
			}
			tb, err := os.ReadFile(slices.Max(ssts))
			if err != nil {
				t.Fatal(err)
			}
			orphan := table.NewFilename(last+1, cfg.Dir)
			if err := os.WriteFile(orphan, tc.data(tb), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := Check(cfg.Dir, nil)
			if err != nil || len(r.Problems) > 0 || r.Records != 20000 {
				t.Fatalf("Check = %+v, %v; want 20000 records, no problems", r, err)
			}
			if n, distinct := drain(t, cfg); n != 20000 || !distinct {
				t.Fatalf("reopened buffer holds %d records (distinct %v), want 20000", n, distinct)
			}
			// Badger deleted it; the table of the same id it may have
			// written since (flushing the replayed memtable log) is whole.
			if _, err := os.Stat(orphan); err == nil {
				if err := verifyTable(orphan, true); err != nil {
					t.Fatalf("the unlisted table is still there: %v", err)
				}
			}
			if n, _ := drain(t, cfg); n != 20000 {
				t.Fatalf("second reopen holds %d records, want 20000", n)
			}
		})
	}
}

// A table the MANIFEST lists that is empty is damage (not the leftover of
// an interrupted operation): Open still refuses it, naming it.
func TestListedEmptyTableIsDamage(t *testing.T) {
	cfg := damagedBuffer(t, 20000, false)
	ssts := files(t, cfg.Dir, ".sst")
	if err := os.Truncate(ssts[0], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg, nil, nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), filepath.Base(ssts[0])) {
		t.Fatalf("Open = %v, want ErrDamaged naming %s", err, filepath.Base(ssts[0]))
	}
}

// kill -9 between Badger creating a memtable log or value log and sizing it
// leaves the file empty, and Badger then refused to open ("while opening
// fid: 1 err: Create a new file"). Open removes it (it holds nothing).
func TestEmptyLogAfterKill(t *testing.T) {
	for _, ext := range []string{".mem", ".vlog"} {
		t.Run(ext, func(t *testing.T) {
			cfg := damagedBuffer(t, 20000, true)
			logs := files(t, cfg.Dir, ext)
			if len(logs) == 0 {
				t.Fatalf("want a crash image with %s files", ext)
			}
			var last int
			for _, p := range logs {
				fid, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ext))
				if err != nil {
					t.Fatal(err)
				}
				last = max(last, fid)
			}
			empty := filepath.Join(cfg.Dir, fmt.Sprintf("%0*d%s", len(strings.TrimSuffix(filepath.Base(logs[0]), ext)), last+1, ext))
			if err := os.WriteFile(empty, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := Check(cfg.Dir, nil)
			if err != nil || len(r.Problems) > 0 || r.Records != 20000 {
				t.Fatalf("Check = %+v, %v; want 20000 records, no problems", r, err)
			}
			if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
				t.Fatalf("Check changed the buffer: %v, %v", fi, err)
			}
			if n, distinct := drain(t, cfg); n != 20000 || !distinct {
				t.Fatalf("reopened buffer holds %d records (distinct %v), want 20000", n, distinct)
			}
		})
	}
}
