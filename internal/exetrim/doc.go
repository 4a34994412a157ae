// Package exetrim hands back the resident pages of edgegate's own
// executable once the gateway has started.
//
// The kernel maps a program's code and read-only data from its file, and
// maps pages around every fault that are already in the page cache (fault
// around), so a Go binary of ~22 MB soon has most of its code resident:
// 19 of the 26 MB of file-backed memory of a gateway at 1,000 events/s,
// counted in its RSS (issue 13), most of it code that ran once while the
// gateway started (config parsing, schema compilation, TLS setup). Trim
// calls MADV_PAGEOUT on the executable's read-only mappings once: the
// kernel reclaims those pages (from the page cache too, where only this
// process maps them), and what the gateway still runs faults back in, once,
// from the disk. MADV_RANDOM first turns off readahead on those mappings,
// so a page faulted back comes alone, not with the 128 KiB around it: at
// 1,000 events/s the executable's resident pages settled at ~10 MB with it
// and ~14 MB without. Contents never change: it is safe whatever the
// kernel does with the advice. Kernels older than 5.4 refuse MADV_PAGEOUT; Trim
// then does nothing and says so.
//
// exetrim imports only the standard library and x/sys: it must not import
// any edgegate package. Trim and Resident are safe for concurrent use
// (they read /proc/self/smaps and advise the kernel; they keep no state).
package exetrim
