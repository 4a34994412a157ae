package exetrim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is Trim's error where the kernel has no MADV_PAGEOUT.
var ErrUnsupported = errors.New("the kernel has no MADV_PAGEOUT (Linux < 5.4)")

// Trim pages out the executable's read-only mappings and returns how many
// bytes of them were resident before and after.
func Trim() (before, after int64, err error) {
	exe, err := executable()
	if err != nil {
		return 0, 0, err
	}
	maps, err := mappings(exe)
	if err != nil {
		return 0, 0, err
	}
	if len(maps) == 0 {
		return 0, 0, fmt.Errorf("no mapping of %s in /proc/self/smaps", exe)
	}
	before = resident(maps)
	for _, m := range maps {
		// Random access first: a page faulted back in later is read
		// alone, not with the readahead window around it (128 KiB), so
		// what comes back is the code that runs, not its neighbours.
		// Advice only: an error changes nothing.
		unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_RANDOM)
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		if errno == unix.EINVAL {
			return before, before, ErrUnsupported
		}
	}
	after, err = Resident()
	return before, after, err
}

// Resident returns how many bytes of the executable's read-only mappings
// are resident.
func Resident() (int64, error) {
	exe, err := executable()
	if err != nil {
		return 0, err
	}
	maps, err := mappings(exe)
	return resident(maps), err
}

// mapping is one read-only mapping of the executable in /proc/self/smaps.
type mapping struct {
	start, end uintptr
	rss        int64 // resident bytes
	random     bool  // readahead off (VmFlags rr: MADV_RANDOM)
}

// resident is the sum of the mappings' Rss.
func resident(maps []mapping) int64 {
	var n int64
	for _, m := range maps {
		n += m.rss
	}
	return n
}

// executable is the executable's path as /proc/self/smaps names it.
func executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	return exe, nil
}

// mappings returns exe's read-only mappings in /proc/self/smaps. Writable
// mappings (the data segment, copied on write) are left alone.
func mappings(exe string) ([]mapping, error) {
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	var maps []mapping
	in := false
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 5 && strings.Contains(f[0], "-") && len(f[1]) == 4 {
			// A mapping's header: range perms offset dev inode [path].
			path := strings.TrimSuffix(strings.Join(f[5:], " "), " (deleted)")
			in = path == exe && f[1][1] != 'w'
			if in {
				lo, hi, ok := strings.Cut(f[0], "-")
				start, err1 := strconv.ParseUint(lo, 16, 64)
				end, err2 := strconv.ParseUint(hi, 16, 64)
				if !ok || err1 != nil || err2 != nil {
					return nil, fmt.Errorf("/proc/self/smaps: bad range %q", f[0])
				}
				maps = append(maps, mapping{start: uintptr(start), end: uintptr(end)})
			}
			continue
		}
		if !in {
			continue
		}
		m := &maps[len(maps)-1]
		if kb, ok := strings.CutPrefix(line, "Rss:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/self/smaps: bad Rss line %q", line)
			}
			m.rss = n << 10
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			m.random = slices.Contains(strings.Fields(flags), "rr")
		}
	}
	return maps, sc.Err()
}
