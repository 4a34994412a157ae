package buffer

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Badger tuning for a 1 GB Raspberry Pi: small memtables, value-log files
// and caches (README, "Running on a Raspberry Pi"). These also keep the
// mapped address space small on 32-bit ARM: Badger's defaults map ~2.7 GiB
// (2 GiB value log + 128 MiB WAL) and cannot reopen there.
const (
	memTableSize     = 4 << 20
	valueLogFileSize = 16 << 20
	// valueThreshold keeps typical records (a few KiB) inside the LSM tree,
	// where deletes are reclaimed by compaction; larger ones go to the value
	// log. It must stay below 15% of memTableSize (Badger's max batch size).
	valueThreshold = 64 << 10
)

func badgerOptions(dir string, log *slog.Logger) badger.Options {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return badger.DefaultOptions(dir).
		WithSyncWrites(true). // a commit is an fsync: see doc.go
		WithMemTableSize(memTableSize).
		WithBaseTableSize(memTableSize / 4). // table builders start at 2x this
		WithNumMemtables(2).
		WithCompression(options.None).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold).
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(2 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false). // one writer per key: the committer
		WithLogger(badgerLogger{log})
}

// openBadger opens Badger with opts. A panic inside Badger's Open, or a fault
// on a mapped file while it replays its memtable logs in this goroutine
// (SIGBUS: a file truncated behind its back, a full tmpfs), comes back as
// an error instead of killing the process: a gateway that dies while
// opening its buffer dies again at every restart.
func openBadger(opts badger.Options) (db *badger.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger failed while opening: %v", r)
		}
	}()
	return badger.Open(opts)
}

// badgerLogger routes Badger's logger to slog, keeping warnings and errors.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.log.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (l badgerLogger) Warningf(f string, a ...any) {
	l.log.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
