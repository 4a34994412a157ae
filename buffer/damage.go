package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Damage found while the buffer runs. A failing SD card or a stray write
// can damage a table after it was written and checked. Badger decodes a
// block before it verifies its checksum, so a damaged block can panic in
// whichever goroutine reads it: in ours (Open's load, Next) the panic is
// caught here and the buffer turns damaged (below); in Badger's own
// compaction goroutines it kills the process, at every restart. The start
// counter breaks that loop: after crashLoopStarts opens in a row that were
// not followed by a clean Close or stableAfter of running, Open checks
// every block's checksum before opening Badger, finds the table and
// refuses with ErrDamaged like any damaged buffer (the gateway runs without
// its buffer and says so until `edgegate buffer repair`).
//
// A damaged buffer refuses new records (Append: ErrDamaged), Next returns
// ErrDamaged, and Refusing says why, for readiness; records already leased
// can still be acknowledged.

// startsFile, in the buffer directory, holds how many times the buffer was
// opened since it last ran clean.
const startsFile = "edgegate.starts"

const (
	// crashLoopStarts: opens without a clean run before an open reads
	// every block (a kill -9 or a power cut is one; a crash loop many).
	crashLoopStarts = 2
	// stableAfter: a buffer that ran this long ran clean.
	stableAfter = 5 * time.Minute
)

// countStart records one more open of dir and reports whether the earlier
// ones look like a crash loop.
func countStart(dir string) (loop bool, err error) {
	path := filepath.Join(dir, startsFile)
	n := 0
	if b, err := os.ReadFile(path); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", startsFile, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n+1)+"\n"), 0o640); err != nil {
		return false, fmt.Errorf("write %s: %w", startsFile, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("write %s: %w", startsFile, err)
	}
	return n >= crashLoopStarts, nil
}

// ranClean forgets the opens counted so far.
func (b *Buffer) ranClean() {
	if err := os.Remove(filepath.Join(b.cfg.Dir, startsFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		b.log.Warn("buffer start counter not reset", "err", err)
	}
}

// catchDamage runs fn, which reads the database in this goroutine, and
// turns a panic (or a fault on a mapped file) inside Badger into
// ErrDamaged, marking the buffer damaged.
func (b *Buffer) catchDamage(what string, fn func() error) error {
	var err error
	if p := caught(func() { err = fn() }); p != nil {
		return b.damagedBy(what + ": " + p.Error())
	}
	return err
}

// damagedBy marks the buffer damaged (logging it once) and returns the
// *DamageError.
func (b *Buffer) damagedBy(problem string) error {
	err := &DamageError{Dir: b.cfg.Dir, Problems: []string{problem}}
	if b.damaged.CompareAndSwap(nil, err) {
		b.m.damaged.Set(1)
		b.log.Error("buffer damaged: refusing new events; stop the gateway and run `edgegate buffer repair` to salvage every readable record",
			"dir", b.cfg.Dir, "err", problem)
		return err
	}
	return b.damaged.Load()
}

// Damaged returns the *DamageError met while running, or nil.
func (b *Buffer) Damaged() error {
	if err := b.damaged.Load(); err != nil {
		return err
	}
	return nil
}
