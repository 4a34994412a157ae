package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned by Open when another process (a running gateway)
// has the buffer open: Badger allows one process at a time.
var ErrLocked = errors.New("buffer in use by another process")

// ErrUnclean is returned by Open with ReadOnly when the buffer was not
// closed cleanly (the gateway crashed, was killed or lost power): Badger
// must replay its write-ahead log, which writes. Opening it read-write
// once (as the gateway does at start) recovers it.
var ErrUnclean = errors.New("buffer not closed cleanly: opening it needs a write (log replay)")

// ErrReadOnly is returned by what would write to a buffer opened with
// ReadOnly.
var ErrReadOnly = errors.New("buffer opened read-only")

// ReadOnly opens the buffer for reading only, as tools inspecting a stopped
// gateway's buffer do: nothing is written, so no file changes owner or
// content. Stats, Queues, List and Get work; Run, Append, Delete and Ack
// fail. Opening fails if the directory holds no buffer, or with ErrUnclean
// if the last writer did not close it cleanly.
func ReadOnly() Option { return func(b *Buffer) { b.readOnly = true } }

// checkReadOnlyDir reports a directory that holds no buffer before Badger,
// opened read-only, fails with a less helpful message.
func checkReadOnlyDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no buffer in %s", dir)
		}
		return fmt.Errorf("open buffer %s: %w", dir, err)
	}
	return nil
}

// lockedBy returns an ErrLocked error, with the holder's pid when Badger
// wrote it, if another process holds the lock Badger takes on dir; nil
// otherwise. Open calls it when Badger fails, whose own message cannot be
// told apart with errors.Is.
func lockedBy(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	// Badger flocks the directory: exclusively when writing, shared when
	// reading. Our exclusive probe fails while anyone holds either.
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return nil
	}
	if pid, _ := os.ReadFile(filepath.Join(dir, "LOCK")); len(pid) > 0 {
		return fmt.Errorf("%w: %s (pid %s)", ErrLocked, dir, strings.TrimSpace(string(pid)))
	}
	return fmt.Errorf("%w: %s", ErrLocked, dir)
}

// uncleanErr returns ErrUnclean, wrapped with Badger's err, when err is
// Badger refusing a read-only open for want of a log replay (its errors
// do not wrap: the message is all there is; a test pins it).
func uncleanErr(dir string, err error) error {
	if strings.Contains(err.Error(), "truncate required") {
		return fmt.Errorf("open buffer %s: %w (%v)", dir, ErrUnclean, err)
	}
	return nil
}
