package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Badger's value meta bits (badger structs.go): a delete marker, and a
// value kept in the value log rather than in the table.
const (
	badgerBitDelete       = 1 << 0
	badgerBitValuePointer = 1 << 1
)

// salvageTable reads what is readable of the damaged table file at path,
// block by block: a block whose checksum fails, or whose decoding panics,
// is skipped and counted in lost, and the next one read. It hands every
// record, queue and mark entry found to put (keys without Badger's
// version), learning queue names into names. A table whose index cannot be
// read yields nothing (lost = -1).
func salvageTable(path string, names map[uint16]string, put func(k, v []byte) error) (entries, lost int, err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, -1, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	defer mf.Close(-1)
	var t *table.Table
	if caught(func() {
		t, err = table.OpenTable(mf, table.Options{ChkMode: options.OnBlockRead, Compression: options.None})
	}) != nil || err != nil {
		return 0, -1, nil
	}
	bases := t.KeySplits(1<<30, nil) // the first key of every block
	for i, base := range bases {
		var next []byte
		if i+1 < len(bases) {
			next = []byte(bases[i+1])
		}
		n := 0
		// Reading on past the block's end into a damaged next block fails
		// here too: only a block that yielded nothing is lost.
		_ = caught(func() {
			it := t.NewIterator(0)
			defer it.Close()
			for it.Seek([]byte(base)); it.Valid(); it.Next() {
				if next != nil && y.CompareKeys(it.Key(), next) >= 0 {
					break
				}
				n++
				k := y.ParseKey(it.Key())
				vs := it.Value()
				if len(k) == 0 || (k[0] != prefixMeta && k[0] != prefixRecord) || vs.Meta&(badgerBitDelete|badgerBitValuePointer) != 0 {
					continue
				}
				if len(k) > 2 && k[0] == prefixMeta && k[1] == metaQueue && len(vs.Value) == 2 {
					names[binary.BigEndian.Uint16(vs.Value)] = string(k[2:])
				}
				if err = put(bytes.Clone(k), bytes.Clone(vs.Value)); err != nil {
					return
				}
				entries++
			}
		})
		if err != nil {
			return entries, lost, err
		}
		if n == 0 { // every block holds at least one entry
			lost++
		}
	}
	return entries, lost, nil
}

// caught runs fn and returns a panic inside it (or a fault on a mapped
// file) as an error.
func caught(fn func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s", panicText(r))
		}
	}()
	fn()
	return nil
}
