package faults

import (
	"encoding/binary"
	"fmt"
	"os"
)

// GarbleBlocks sets the entry count in the trailer of up to n data blocks
// of the Badger table file at path to a huge value, as a bad sector might.
// Badger decodes the count before it verifies the block's checksum and
// panics slicing the block, wherever it reads it. Block ends are found by
// their trailer (badger table/builder.go): the entry offsets, their count
// (4 bytes), the checksum (4-12 bytes) and its length (4 bytes). Blocks in
// the first 8 KiB and the second half of the file are left alone, as is at
// least 3 KB after each damaged one. It returns how many it damaged, at
// least one, or an error.
func GarbleBlocks(path string, n int) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return 0, err
	}
	hit := 0
	for p := 8192; p+4 < len(data)/2 && hit < n; p++ {
		chk := int(binary.BigEndian.Uint32(data[p:]))
		if chk < 4 || chk > 12 {
			continue
		}
		at := p - chk - 4
		if count := binary.BigEndian.Uint32(data[at:]); count < 5 || count > 200 {
			continue
		}
		if _, err := f.WriteAt([]byte{0, 0xff, 0xff, 0xff}, int64(at)); err != nil {
			return hit, err
		}
		hit++
		p += 3000
	}
	if hit == 0 {
		return 0, fmt.Errorf("%s: no block trailer found", path)
	}
	return hit, f.Sync()
}
