package buffer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Badger maps every table file and reads tables through the mappings, and
// a mapped page, once read, stays in the process's resident set (RssFile)
// until the table is deleted. With a large backlog that is most of RSS:
// opening 10 million events touched ~100 KiB around each table's index
// (the kernel reads ahead around a fault), 370 MB for 3,700 tables, and
// draining or compacting them adds every page read (issue 13: "119 MB
// buffered, RSS 170 MB, 143 MB of it file-backed"). The pages are page
// cache the kernel could reclaim, but the process is charged for them,
// and the memory a user budgets for is RSS.
//
// So while the buffer runs, trim hands the resident pages of the table
// mappings back with MADV_PAGEOUT once RssFile has grown by trimGrowth
// since the last trim. MADV_PAGEOUT only reclaims: contents are kept, a
// later read faults the page in again from the disk (a clean page that
// only this process maps leaves the page cache too), so
// it is harmless even if a table was unmapped (and its addresses reused)
// between reading /proc/self/maps and the call, unlike MADV_DONTNEED,
// which would zero anonymous memory mapped there meanwhile. Kernels older
// than 5.4 refuse it (EINVAL): trimming then stops, said once in the log.
//
// Trimming while Badger opens its tables was tried and dropped: madvise
// over thousands of mappings contends with Badger's own mmap calls for the
// address-space lock, and opening 10 million events took 4-5 s instead of
// 1.6. So RSS peaks briefly at open, with the number of tables (verifyDir
// keeps that to the pages Badger needs: see verifyTable).

// trimEvery is how often trim checks RssFile while the buffer runs;
// trimGrowth is how much RssFile may grow from its low since the last
// trim before trim reclaims the table pages.
const (
	trimEvery  = 500 * time.Millisecond
	trimGrowth = 4 << 20
)

// trimmer is the state of trim, made by Open and used by Run's trim
// goroutine.
type trimmer struct {
	dir  string // the buffer dir as /proc/self/maps names it
	base int64  // RssFile after the last trim
	off  bool   // the kernel refused MADV_PAGEOUT, or dir could not be resolved
}

// newTrimmer returns the trimmer of the buffer's table mappings.
func (b *Buffer) newTrimmer() *trimmer {
	dir, err := filepath.Abs(b.cfg.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		b.log.Warn("cannot resolve the buffer dir: its mapped pages are not trimmed", "dir", b.cfg.Dir, "err", err)
		return &trimmer{off: true}
	}
	return &trimmer{dir: dir + string(filepath.Separator)}
}

// trimLoop trims at once (opening touched every table) and then every
// interval until done is closed.
func (b *Buffer) trimLoop(done <-chan struct{}, every time.Duration) {
	t := b.trimmer
	b.trim(t)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !t.off {
		select {
		case <-done:
			return
		case <-tick.C:
			b.trim(t)
		}
	}
}

// trim reclaims the resident pages of the buffer's table mappings if
// RssFile grew by trimGrowth since the last trim.
func (b *Buffer) trim(t *trimmer) {
	if t.off {
		return
	}
	before, err := rssFile()
	if err != nil {
		return
	}
	if before < t.base {
		// RssFile fell since (tables deleted, the executable's pages
		// handed back): growth counts from the low.
		t.base = before
	}
	if t.base > 0 && before < t.base+trimGrowth {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	for line := range bytes.Lines(maps) {
		start, end, ok := tableMapping(line, t.dir)
		if !ok {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_PAGEOUT)
		if errno == unix.EINVAL {
			t.off = true
			b.log.Info("the kernel has no MADV_PAGEOUT (Linux < 5.4): pages read from the buffer's tables stay resident")
			return
		}
	}
	after, err := rssFile()
	if err != nil {
		return
	}
	t.base = after
	if before > after {
		b.m.mappedReleased.Add(int(before - after))
	}
}

// tableMapping parses one line of /proc/self/maps and reports the address
// range of a mapping of a table file (.sst) in dir.
func tableMapping(line []byte, dir string) (start, end uintptr, ok bool) {
	f := bytes.Fields(line)
	if len(f) < 6 {
		return 0, 0, false
	}
	path := string(bytes.Join(f[5:], []byte(" ")))
	if len(path) <= len(dir) || path[:len(dir)] != dir || filepath.Ext(path) != ".sst" {
		return 0, 0, false
	}
	lo, hi, found := bytes.Cut(f[0], []byte("-"))
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	if errors.Join(err1, err2) != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}

// rssFile reads the process's resident file-backed bytes.
func rssFile() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("RssFile:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, err
		}
		return kb << 10, nil
	}
	return 0, errors.New("no RssFile in /proc/self/status")
}
