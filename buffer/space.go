package buffer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Badger writes on its own, long after the appends that caused it: it
// flushes memtable logs into level-0 tables, and a compaction writes its
// output tables before it deletes its input. Because every level-0 table
// spans the whole key range (the oldest records' deletes, the newest
// records, the queue and mark keys before them), one compaction may rewrite
// every table. Measured with 900-byte records, 40 MiB stored: 40.4 MiB of
// tables grew to 58.3 MiB during a compaction (62.1 MiB in all). And it
// writes through mmap, so running out of room kills the process with
// SIGBUS; reopening on a full disk dies the same way (on tmpfs even
// reading the unwritten tail of a memtable log needs a page). So the
// buffer keeps Badger's worst case free at all times (usage.headroom) and
// never opens Badger without it.

// usage is what Badger's files occupy on disk (allocated blocks, so a
// sparse memtable log counts for what was written to it).
type usage struct {
	tables    int64 // .sst
	memtables int64 // .mem: memtable logs, flushed into level-0 tables
	vlog      int64 // .vlog
}

// scanUsage reads the allocated size of Badger's files in dir. A missing
// dir is empty.
func scanUsage(dir string) (usage, error) {
	var u usage
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return u, fmt.Errorf("read buffer dir: %w", err)
	}
	for _, e := range ents {
		var field *int64
		switch filepath.Ext(e.Name()) {
		case ".sst":
			field = &u.tables
		case ".mem":
			field = &u.memtables
		case ".vlog":
			field = &u.vlog
		default:
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted by a compaction meanwhile
		}
		if err != nil {
			return u, fmt.Errorf("read buffer dir: %w", err)
		}
		*field += allocated(fi)
	}
	return u, nil
}

// allocated returns the bytes fi occupies on disk.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512 //nolint:unconvert // field types differ by platform
	}
	return fi.Size()
}

// owner returns the user and group owning fi.
func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// badgerFixed is the room Badger needs on top of its files whatever it
// stores: the active memtable log filling up (memTableSize and one batch)
// with the deletes and marks written while appends are refused, its flush,
// and the level-0 tables that pile up until a compaction takes them.
const badgerFixed = 4 * memTableSize

// headroom is the most Badger may write beyond what its files occupy now,
// with no new append: flushing every memtable log into a level-0 table,
// then one compaction rewriting every table, the flushed ones included,
// and badgerFixed. Value-log GC is only run when its rewrite (one value-log
// file) fits on top of this.
func (u usage) headroom() int64 { return u.tables + 2*u.memtables + badgerFixed }

// ErrNoSpace is returned by Open when the file system holding the buffer
// has too little room for Badger to open and compact without dying (see
// SpaceError); Open may succeed once space is freed.
var ErrNoSpace = errors.New("not enough disk space to open the buffer safely")

// SpaceError says how much room opening the buffer needs.
type SpaceError struct {
	Dir        string
	Free, Need int64 // bytes
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("%v: %s has %d bytes free, Badger needs %d to open and compact what it holds (free %d more bytes)",
		ErrNoSpace, e.Dir, e.Free, e.Need, e.Need-e.Free)
}

func (e *SpaceError) Is(target error) bool { return target == ErrNoSpace }

// The reserve is a file of reserveSize bytes, allocated in Dir, that the
// buffer gives up when Badger's worst case no longer fits in the free space
// (something else filled the disk, or the estimate fell short) and before
// an Open that would not fit otherwise; it is allocated again once there is
// room for it on top of the floor. It keeps room for Badger that other
// programs on the same file system cannot take.
const (
	reserveName = "edgegate.reserve"
	reserveSize = badgerFixed
)

// reserveHeld reports whether dir holds a whole reserve file; a partial
// one (a crash while allocating it) is removed.
func reserveHeld(dir string) bool {
	path := filepath.Join(dir, reserveName)
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	if allocated(fi) < reserveSize && fi.Size() < reserveSize {
		os.Remove(path)
		return false
	}
	return true
}

// allocateReserve allocates the reserve file in dir, writing zeros where
// the file system cannot allocate without writing.
func allocateReserve(dir string) error {
	path := filepath.Join(dir, reserveName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create disk reserve: %w", err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, reserveSize)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = writeZeros(f, reserveSize)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("allocate disk reserve: %w", err)
	}
	return nil
}

func writeZeros(f *os.File, n int64) error {
	zeros := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// releaseReserve deletes the reserve file of dir.
func releaseReserve(dir string) error {
	err := os.Remove(filepath.Join(dir, reserveName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("release disk reserve: %w", err)
	}
	return nil
}
