#!/usr/bin/env bash
# patch-ristretto.sh: make Badger safe on 32-bit ARM, and keep its memory
# bounded.
#
# ristretto v2 (pulled by badger v4; every v2 release up to v2.4.2 at the time
# of writing) has two bugs that lose data or crash on 32-bit platforms (the
# README's "Running on a Raspberry Pi"; scripts/test-arm.sh shows them under
# qemu with buffer's allocator and 100k-record round-trip tests):
#   1. z/allocator.go shifts an int by 32: `uint64((bufIdx+1)<<32)` is 0 on
#      32-bit, so an allocator wraps onto its first buffer and SST blocks are
#      overwritten.
#   2. z/mmap_linux.go maps with unix.Mmap (which records the mapping inside
#      x/sys) but unmaps/remaps with raw syscalls, so x/sys keeps stale slices
#      into unmapped memory that the Go heap may later reuse.
# and one that costs memory and CPU on every platform:
#   3. z.AllocatorPool.Return keeps up to 8 of Badger's table-builder
#      allocators for reuse with every buffer they grew (up to 400 MiB each).
#      Without jemalloc those buffers are Go heap: a flush of a 4 MiB memtable
#      grows its allocator to 6-14 MiB, and while Badger builds tables (a
#      backlog, a drain) the pooled allocators held 20-30 MB of live heap, up
#      against the gateway's 40 MiB memory_limit, so the garbage collector ran
#      without pause (736 collections in 5 s; binary mode at 8.5-9.7k
#      events/s, 0.16 CPU s per 1,000). Return now releases the allocator to
#      the garbage collector (what Return does anyway when the pool is full):
#      19.5-21.3k events/s, 0.05 CPU s per 1,000, peak RSS 65-68 MB instead
#      of 72-85 (README, "Performance"; issue 13).
#
# This script copies the ristretto version that go.mod selects from the module
# cache into build/ristretto (git-ignored), applies the fixes, failing loudly
# if the expected original code is not found, and writes build/go.work which
# replaces ristretto with the patched copy. Every go command of the project runs
# with GOWORK=<repo>/build/go.work. It is idempotent and returns quickly when
# build/ is up to date.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build"
dst="$build/ristretto"
mod=github.com/dgraph-io/ristretto/v2

die() { echo "patch-ristretto: $*" >&2; exit 1; }

cd "$root"
# Version first: Dir is empty while the module is not in the cache yet (a
# fresh machine), and read would then shift the version into src.
IFS='|' read -r ver src < <(GOWORK=off go list -m -f '{{.Version}}|{{.Dir}}' "$mod") || die "cannot resolve $mod from go.mod"
[ -n "${ver:-}" ] || die "go.mod selects no version of $mod"
if [ -z "${src:-}" ] || [ "$src" = "$ver" ] || [ ! -d "$src" ]; then
	# Not in the module cache yet.
	src=$(GOWORK=off go mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[ -d "$src" ] || die "cannot download $mod@$ver"
fi

godirective=$(awk '$1 == "go" { print $2; exit }' go.mod)
[ -n "$godirective" ] || die "no go directive in go.mod"

script_sum=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
stamp="$ver $script_sum"
work="go $godirective

use ..

replace $mod => ./ristretto
"

if [ -f "$dst/.edgegate-patched" ] && [ "$(cat "$dst/.edgegate-patched")" = "$stamp" ] &&
	[ -f "$build/go.work" ] && [ "$(cat "$build/go.work")" = "$(printf '%s' "$work")" ]; then
	exit 0
fi

# Out of date: remove the old copy and go.work first, so a failure below
# leaves no stale (or unpatched) replacement behind: builds then fail loudly.
mkdir -p "$build"
rm -f "$build/go.work"
rm -rf "$dst" "$dst.tmp"
trap 'rm -rf "$dst.tmp"' EXIT
cp -R "$src" "$dst.tmp"
chmod -R u+w "$dst.tmp"

# replace FILE DESCRIPTION PERL-SUBSTITUTION: applies a substitution that must
# match exactly once.
replace() {
	local file=$1 what=$2 expr=$3
	[ -f "$file" ] || die "$what: $file not found in $mod@$ver"
	N=0 perl -0777 -i -pe "\$n = ($expr); END { exit(\$n == 1 ? 0 : 3) }" "$file" ||
		die "$what: expected original code not found exactly once in ${file#"$dst.tmp/"} ($mod@$ver); re-check the fix against this version"
}

# Fix 1: shift after widening to uint64.
replace "$dst.tmp/z/allocator.go" "allocator shift" \
	's/\Qatomic.StoreUint64(&a.compIdx, uint64((bufIdx+1)<<32))\E/atomic.StoreUint64(&a.compIdx, uint64(bufIdx+1)<<32)/g'

# Fix 2a: map without registering the mapping inside x/sys.
replace "$dst.tmp/z/mmap_linux.go" "mmap via MmapPtr" \
	's/\Q	return unix.Mmap(int(fd.Fd()), 0, int(size), mtype, unix.MAP_SHARED)\E\n/	\/\/ edgegate: MmapPtr does not record the mapping in x\/sys, which would keep\n	\/\/ stale slices after mremap\/munmap (bad pointers in the Go heap on 32-bit).\n	p, err := unix.MmapPtr(int(fd.Fd()), 0, nil, uintptr(size), mtype, unix.MAP_SHARED)\n	if err != nil {\n		return nil, err\n	}\n	return unsafe.Slice((*byte)(p), int(size)), nil\n/g'

# Fix 2b: unmap with the matching pointer API.
replace "$dst.tmp/z/mmap_linux.go" "munmap via MunmapPtr" \
	's/\Q	_, _, errno := unix.Syscall(\E\n\Q		unix.SYS_MUNMAP,\E\n\Q		uintptr(unsafe.Pointer(&data[0])),\E\n\Q		uintptr(len(data)),\E\n\Q		0,\E\n\Q	)\E\n\Q	if errno != 0 {\E\n\Q		return errno\E\n\Q	}\E\n\Q	return nil\E\n/	return unix.MunmapPtr(unsafe.Pointer(&data[0]), uintptr(len(data)))\n/g'

# Fix 3: release a builder's allocator instead of pooling it with its buffers.
replace "$dst.tmp/z/allocator.go" "allocator pool" \
	's/\Q	a.TrimTo(400 << 20)\E\n\n\Q	select {\E\n\Q	case p.allocCh <- a:\E\n\Q		return\E\n\Q	default:\E\n\Q		a.Release()\E\n\Q	}\E\n/	\/\/ edgegate: pooled allocators keep every buffer they grew as live Go\n	\/\/ heap (no jemalloc); let the garbage collector have them.\n	a.Release()\n/g'
# The remaining mmap users must not go through x/sys' tracked Mmap/Munmap
# either: mremap uses a raw syscall (consistent with untracked mappings).
if grep -n 'unix\.Mmap(\|unix\.Munmap(' "$dst.tmp/z/mmap_linux.go" "$dst.tmp"/z/mremap*.go "$dst.tmp"/z/file_linux.go "$dst.tmp"/z/calloc*.go; then
	die "tracked unix.Mmap/unix.Munmap still used on linux in $mod@$ver"
fi

(cd "$dst.tmp" && gofmt -l z) | grep . && die "patched files are not gofmt-clean"

printf '%s' "$stamp" >"$dst.tmp/.edgegate-patched"
mv "$dst.tmp" "$dst"
printf '%s' "$work" >"$build/go.work"
echo "patch-ristretto: patched $mod@$ver into build/ristretto, wrote build/go.work"
