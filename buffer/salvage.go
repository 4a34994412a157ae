package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// A damaged buffer must not take the gateway down with it. Badger opens its
// table files in goroutines of its own, where a damaged one (truncated by a
// failing SD card, say) panics and kills the process, at every restart; and
// it deletes every table its MANIFEST does not list, all of them when the
// MANIFEST is gone. So Open first reads every table's index itself, in its
// own goroutine, where a panic is caught, and refuses a buffer with tables
// but no MANIFEST (ErrDamaged). Check reads everything (every block's
// checksum, every record) without changing the buffer; Repair salvages
// every readable record into a fresh buffer and keeps the damaged one
// aside.

// ErrDamaged is returned by Open, Check and Repair for a buffer whose files
// are damaged (see DamageError).
var ErrDamaged = errors.New("buffer damaged")

// DamageError lists what is wrong with the buffer in Dir.
type DamageError struct {
	Dir      string
	Problems []string
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrDamaged, e.Dir, strings.Join(e.Problems, "; "))
}

func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

// verifyTable reads the table file at path with Badger's table package in
// this goroutine, where a panic or a fault on the mapped file is caught:
// its index only, or every block's checksum too when thorough.
func verifyTable(path string, thorough bool) (err error) {
	if _, ok := table.ParseFileID(filepath.Base(path)); !ok {
		return fmt.Errorf("%s: not a table file name", filepath.Base(path))
	}
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	defer mf.Close(-1)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: unreadable: %s", filepath.Base(path), panicText(r))
		}
	}()
	// NoVerification: OpenTable closes the file itself when a checksum
	// fails, and the deferred Close must be the only one.
	t, err := table.OpenTable(mf, table.Options{ChkMode: options.NoVerification, Compression: options.None})
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if thorough {
		if err := t.VerifyChecksum(); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
	}
	return nil
}

// panicText is a recovered panic as one line, without the banners Badger
// wraps around its own.
func panicText(r any) string {
	var parts []string
	for _, l := range strings.Split(fmt.Sprint(r), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "==") {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// dirFiles lists the table files and whether dir has a MANIFEST.
func dirFiles(dir string) (tables []string, manifest bool, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read buffer dir: %w", err)
	}
	for _, e := range ents {
		switch {
		case e.Name() == badger.ManifestFilename:
			manifest = true
		case filepath.Ext(e.Name()) == ".sst":
			tables = append(tables, e.Name())
		}
	}
	return tables, manifest, nil
}

// listedTables returns the table files of dir that make up the buffer: the
// ones its MANIFEST lists, or every one when the MANIFEST is missing or
// cannot be read (Badger's Open then fails on it, or would delete them all).
//
// A table file the MANIFEST does not list is the output of a flush or a
// compaction that a kill -9 interrupted: Badger creates the file (empty
// until it is truncated to size and written), syncs it, and only then adds
// it to the MANIFEST; its records are still in the memtable log or in the
// source tables the MANIFEST lists. Badger deletes such a file when it
// opens, so it is not damage, even when it is empty or half written.
func listedTables(dir string, tables []string) []string {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return tables
	}
	defer f.Close()
	opts := badgerOptions(dir, nil)
	mf, _, err := badger.ReplayManifestFile(f, opts.ExternalMagicVersion, opts)
	if err != nil {
		return tables
	}
	return slices.DeleteFunc(slices.Clone(tables), func(name string) bool {
		id, ok := table.ParseFileID(name)
		_, listed := mf.Tables[id]
		return ok && !listed
	})
}

// verifyDir reports, as a *DamageError, what in dir would make Badger crash
// while opening it or throw data away: an unreadable table file that the
// MANIFEST lists (listedTables), or table files without a MANIFEST.
// thorough also checks every block's checksum.
func verifyDir(dir string, thorough bool) ([]string, error) {
	tables, manifest, err := dirFiles(dir)
	if err != nil {
		return nil, err
	}
	var problems, bad []string
	if len(tables) > 0 && !manifest {
		problems = append(problems, fmt.Sprintf("%d table files but no MANIFEST (Badger would delete them)", len(tables)))
	}
	for _, name := range listedTables(dir, tables) {
		if err := verifyTable(filepath.Join(dir, name), thorough); err != nil {
			problems = append(problems, err.Error())
			bad = append(bad, name)
		}
	}
	if len(problems) > 0 {
		return bad, &DamageError{Dir: dir, Problems: problems}
	}
	return nil, nil
}

// dropEmptyLogs removes the memtable logs and value logs of dir that are
// empty: kill -9 between Badger creating one and sizing it leaves it so,
// and Badger then refuses to open the buffer ("while opening fid: 1 err:
// Create a new file"). An empty log holds nothing. It holds the lock Badger
// takes on dir while it looks, so that it never removes the log a running
// Badger has just created, and returns ErrLocked when it cannot take it.
func dropEmptyLogs(dir string, log *slog.Logger) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("read buffer dir: %w", err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return fmt.Errorf("lock buffer dir: %w", err)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN) //nolint:errcheck // closing d unlocks too
	ents, err := d.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("read buffer dir: %w", err)
	}
	for _, e := range ents {
		if !emptyLog(e) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove empty log: %w", err)
		}
		log.Warn("removed an empty log file that a crash left behind (it held nothing)", "dir", dir, "file", e.Name())
	}
	return nil
}

// emptyLog reports whether e is a memtable log or value log of size 0.
func emptyLog(e fs.DirEntry) bool {
	if ext := filepath.Ext(e.Name()); ext != ".mem" && ext != ".vlog" {
		return false
	}
	fi, err := e.Info()
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}

// Report is what Check found in a buffer, or what Repair salvaged from it.
type Report struct {
	Dir string `json:"dir"`
	// Problems lists what is damaged; empty when the buffer is sound.
	Problems []string `json:"problems,omitempty"`
	// Tables counts the table files; Left lists the files that could not
	// be read (Check) or carried over (Repair).
	Tables int      `json:"tables"`
	Left   []string `json:"left_behind,omitempty"`
	// Queues, Records and Bytes count the records that could be read.
	Queues  map[string]QueueStats `json:"queues"`
	Records int64                 `json:"records"`
	Bytes   int64                 `json:"bytes"`
	// Unreadable counts keys whose value could not be read.
	Unreadable int64 `json:"unreadable"`
	// BlocksLost counts the blocks of damaged tables Repair could not
	// read (the rest of those tables is salvaged).
	BlocksLost int `json:"blocks_lost,omitempty"`
	// Damaged is where Repair moved the damaged buffer.
	Damaged string `json:"damaged,omitempty"`
}

// Check reads everything in the buffer in dir (a stopped gateway's): every
// table's checksums, the MANIFEST, every record, through a scratch copy
// next to dir (hard links and copies, removed afterwards), so nothing in
// dir changes. The report lists what is damaged; the error is ErrLocked
// while a gateway has the buffer open, or what kept Check from looking.
func Check(dir string, log *slog.Logger) (Report, error) {
	r := Report{Dir: dir, Queues: map[string]QueueStats{}}
	if err := lockedBy(dir); err != nil {
		return r, err
	}
	if _, err := os.Stat(dir); err != nil {
		return r, fmt.Errorf("buffer dir: %w", err)
	}
	tables, _, err := dirFiles(dir)
	if err != nil {
		return r, err
	}
	r.Tables = len(tables)
	bad, err := verifyDir(dir, true)
	var de *DamageError
	if errors.As(err, &de) {
		r.Problems = append(r.Problems, de.Problems...)
		r.Left = bad
	} else if err != nil {
		return r, err
	}
	if len(r.Problems) > 0 {
		return r, nil // opening it could crash: Repair reads what is sound
	}
	// Open it as the gateway would, on a copy: Badger replays and
	// truncates its logs when it opens.
	err = withScratch(dir, nil, false, log, func(db *badger.DB) error {
		return scan(db, &r, nil, nil, nil)
	})
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
	}
	if r.Unreadable > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d values unreadable", r.Unreadable))
	}
	return r, nil
}

// Repair salvages every readable record of the buffer in dir (a stopped
// gateway's) into a fresh buffer in dir, and moves the damaged one aside to
// dir.damaged-TIME (Report.Damaged). What it cannot read (a damaged table,
// a memtable log or value log Badger cannot open) is left behind, listed
// in Report.Left. Records keep their queues, positions, append times and
// resend marks; records deleted shortly before the damage may come back
// (delivered twice, never lost). It needs room on the file system for a
// copy of what it salvages.
func Repair(dir string, log *slog.Logger) (Report, error) {
	r, err := Check(dir, log)
	if err != nil {
		return r, err
	}
	bad := r.Left
	tables, _, err := dirFiles(dir)
	if err != nil {
		return r, err
	}
	if err := repairRoom(dir); err != nil {
		return r, err
	}
	fresh := dir + ".repair"
	if err := os.RemoveAll(fresh); err != nil {
		return r, err
	}
	if err := os.MkdirAll(fresh, 0o750); err != nil {
		return r, fmt.Errorf("create %s: %w", fresh, err)
	}
	good := slices.DeleteFunc(listedTables(dir, tables), func(n string) bool { return slices.Contains(bad, n) })
	r.Left = bad
	// The logs are tried whole first, then without the memtable logs, then
	// without the value logs: Badger cannot open past a damaged one.
	var last error
	for _, drop := range [][]string{nil, {".mem"}, {".mem", ".vlog"}} {
		out, err := openFresh(fresh)
		if err != nil {
			return r, err
		}
		r.Queues, r.Records, r.Bytes, r.Unreadable = map[string]QueueStats{}, 0, 0, 0
		last = withScratch(dir, good, true, log, func(db *badger.DB) error {
			wb := out.NewWriteBatch()
			defer wb.Cancel()
			// What the damaged tables still hold goes first, so that a
			// sound table's newer version of a key wins.
			names := map[uint16]string{}
			r.BlocksLost = 0
			for _, name := range bad {
				_, lost, err := salvageTable(filepath.Join(dir, name), names, wb.Set)
				if err != nil {
					return err
				}
				if lost < 0 {
					r.Problems = append(r.Problems, name+": index unreadable, nothing salvaged from it")
					continue
				}
				r.BlocksLost += lost
			}
			if err := scan(db, &r, names, wb.Set, wb.Set); err != nil {
				return err
			}
			if err := wb.Flush(); err != nil {
				return err
			}
			// Count what the fresh buffer holds (a key may be in a
			// damaged table and a sound one), naming the queues of
			// salvaged records whose name was in a lost block.
			r.Queues, r.Records, r.Bytes = map[string]QueueStats{}, 0, 0
			names = map[uint16]string{}
			if err := scan(out, &r, names, nil, func(k, v []byte) error { return out.Update(func(txn *badger.Txn) error { return txn.Set(k, v) }) }); err != nil {
				return err
			}
			return nil
		}, drop...)
		if cerr := out.Close(); last == nil {
			last = cerr
		}
		if last == nil {
			r.Left = append(r.Left, leftFiles(dir, drop)...)
			break
		}
		r.Problems = append(r.Problems, last.Error())
		if err := os.RemoveAll(fresh); err != nil {
			return r, err
		}
		if err := os.MkdirAll(fresh, 0o750); err != nil {
			return r, err
		}
	}
	if last != nil {
		os.RemoveAll(fresh)
		return r, fmt.Errorf("repair %s: nothing could be read: %w", dir, last)
	}
	if err := chownLike(fresh, dir); err != nil {
		return r, err
	}
	r.Damaged = fmt.Sprintf("%s.damaged-%s", dir, time.Now().Format("20060102T150405"))
	if err := os.Rename(dir, r.Damaged); err != nil {
		return r, fmt.Errorf("move the damaged buffer aside: %w", err)
	}
	if err := os.Rename(fresh, dir); err != nil {
		return r, fmt.Errorf("put the repaired buffer in place (the damaged one is in %s): %w", r.Damaged, err)
	}
	return r, nil
}

// repairRoom fails when the file system of dir cannot hold a copy of what
// the buffer holds, its logs included, and room for Badger to write it.
func repairRoom(dir string) error {
	u, err := scanUsage(dir)
	if err != nil {
		return err
	}
	need := u.tables + 2*u.memtables + 2*u.vlog + badgerFixed
	free, err := statfsFree(filepath.Dir(dir))
	if err != nil {
		return err
	}
	if free < need {
		return &SpaceError{Dir: filepath.Dir(dir), Free: free, Need: need}
	}
	return nil
}

// leftFiles names the files of dir with the extensions in drop.
func leftFiles(dir string, drop []string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if slices.Contains(drop, filepath.Ext(e.Name())) {
			out = append(out, e.Name())
		}
	}
	return out
}

// openFresh opens an empty Badger in dir for the salvaged records.
func openFresh(dir string) (*badger.DB, error) {
	db, err := openBadger(badgerOptions(dir, nil).WithSyncWrites(false))
	if err != nil {
		return nil, fmt.Errorf("create the repaired buffer: %w", err)
	}
	return db, nil
}

// withScratch opens a scratch copy of the buffer in dir, next to it, runs
// fn on it and removes it. Table files are hard-linked (Badger only reads
// them; the links go away with the copy) and logs copied (Badger truncates
// them while replaying). With tables == nil the copy is whole, MANIFEST
// and all; otherwise it holds those tables, all at level 0 (where tables
// may overlap and the newest version of a key wins), under a MANIFEST
// written for them, and no files whose extension is in drop. The scratch
// Badger compacts nothing and writes nothing of its own.
func withScratch(dir string, tables []string, synth bool, log *slog.Logger, fn func(*badger.DB) error, drop ...string) error {
	scratch := fmt.Sprintf("%s.scratch-%d", dir, os.Getpid())
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return fmt.Errorf("scratch copy: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read buffer dir: %w", err)
	}
	for _, e := range ents {
		name, ext := e.Name(), filepath.Ext(e.Name())
		src, dst := filepath.Join(dir, name), filepath.Join(scratch, name)
		switch {
		case slices.Contains(drop, ext), emptyLog(e): // see dropEmptyLogs
		case ext == ".sst":
			if synth && !slices.Contains(tables, name) {
				continue
			}
			if err := os.Link(src, dst); err != nil {
				if err := copyFile(src, dst); err != nil {
					return err
				}
			}
		case ext == ".mem" || ext == ".vlog" || (!synth && (name == badger.ManifestFilename || name == "KEYREGISTRY")):
			if err := copyFile(src, dst); err != nil {
				return err
			}
		}
	}
	if synth {
		if err := writeManifest(scratch, tables); err != nil {
			return err
		}
	}
	opts := badgerOptions(scratch, log).WithNumCompactors(0).WithNumLevelZeroTables(1 << 20).
		WithNumLevelZeroTablesStall(1<<20 + 1).WithSyncWrites(false)
	db, err := openBadger(opts)
	if err != nil {
		return fmt.Errorf("open a copy: %w", err)
	}
	err = fn(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close the copy: %w", cerr)
	}
	return err
}

// copyFile copies src to dst, sparse regions included as written.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	return nil
}

// writeManifest writes a MANIFEST listing tables at level 0, in Badger's
// format: a header (magic "Bdgr", external magic 0, version 8), then one
// change set, its length and CRC-32C before it (badger manifest.go).
func writeManifest(dir string, tables []string) error {
	set := &pb.ManifestChangeSet{}
	for _, name := range tables {
		id, ok := table.ParseFileID(name)
		if !ok {
			continue
		}
		set.Changes = append(set.Changes, &pb.ManifestChange{Id: id, Op: pb.ManifestChange_CREATE, Level: 0,
			Compression: uint32(options.None)})
	}
	data, err := proto.Marshal(set)
	if err != nil {
		return err
	}
	buf := append([]byte("Bdgr"), 0, 0, 0, manifestVersion)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	buf = append(buf, data...)
	if err := os.WriteFile(filepath.Join(dir, badger.ManifestFilename), buf, 0o600); err != nil {
		return fmt.Errorf("write a MANIFEST: %w", err)
	}
	return nil
}

// manifestVersion is the MANIFEST format of badger v4 (badgerMagicVersion).
const manifestVersion = 8

// scan reads every record, queue and mark key of db into r, and hands each
// key and value to put when it is not nil, and the name it gives a queue
// whose name was lost to putName. names maps the queue ids known
// beforehand (salvaged from damaged tables) to their names; it may be nil. A value that cannot be read is
// counted, not fatal; a panic while reading (a damaged block) is.
func scan(db *badger.DB, r *Report, names map[uint16]string, put, putName func(k, v []byte) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading the buffer failed: %s", panicText(p))
		}
	}()
	if names == nil {
		names = map[uint16]string{}
	}
	var orphans []uint16 // queues whose name was lost with a table
	defer func() {
		for _, id := range orphans {
			name := names[id]
			r.Problems = append(r.Problems, fmt.Sprintf("queue #%d lost its name: its %d records are in queue %s (edgegate buffer replay --queue %s --to UPLINK sends them)",
				id, r.Queues[name].Records, name, name))
			if putName != nil && err == nil {
				err = putName(metaQueueKey(name), binary.BigEndian.AppendUint16(nil, id))
			}
		}
	}()
	return db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.KeyCopy(nil)
			if len(k) == 0 || (k[0] != prefixMeta && k[0] != prefixRecord) {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				r.Unreadable++
				continue
			}
			if len(k) > 2 && k[0] == prefixMeta && k[1] == metaQueue && len(v) == 2 {
				names[binary.BigEndian.Uint16(v)] = string(k[2:])
			}
			if id, _, ok := parseRecKey(k); ok {
				name := names[id] // queue keys sort before records
				if name == "" {
					name = fmt.Sprintf("salvaged.%d", id)
					names[id] = name
					orphans = append(orphans, id)
				}
				q := r.Queues[name]
				q.Records++
				q.Bytes += int64(max(len(v)-valHeadSize, 0))
				r.Queues[name] = q
				r.Records++
				r.Bytes += int64(max(len(v)-valHeadSize, 0))
			}
			if put != nil {
				if err := put(k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// chownLike gives every file of dir the owner of like (when run as root
// for a gateway that runs as its own user).
func chownLike(dir, like string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(like)
	if err != nil {
		return err
	}
	uid, gid, ok := owner(fi)
	if !ok {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}
