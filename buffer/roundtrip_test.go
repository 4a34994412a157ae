package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/dgraph-io/ristretto/v2/z"
)

// These tests guard against the ristretto bugs that lose data on 32-bit ARM
// (see scripts/patch-ristretto.sh). They pass on 64-bit either way; run them
// on armv7/armv6 with scripts/test-arm.sh. TestAllocatorPoolKeepsNothing
// guards the memory fix, on every platform.

// TestAllocatorPastFirstBuffer fails on an unpatched 32-bit build: once the
// first buffer is full, allocations wrap onto it and overwrite earlier ones.
func TestAllocatorPastFirstBuffer(t *testing.T) {
	a := z.NewAllocator(1024, "edgegate-test")
	defer a.Release()
	var chunks [][]byte
	for i := range 64 { // 4 KiB in 64-byte chunks: past the first 1 KiB buffer
		c := a.Allocate(64)
		for j := range c {
			c[j] = byte(i + 1)
		}
		chunks = append(chunks, c)
	}
	for i, c := range chunks {
		if !bytes.Equal(c, bytes.Repeat([]byte{byte(i + 1)}, 64)) {
			t.Fatalf("chunk %d was overwritten: allocator wrapped (unpatched ristretto on 32-bit?)", i)
		}
	}
}

// TestAllocatorPoolKeepsNothing fails on an unpatched build on every
// platform: the pool hands a returned allocator out again with every buffer
// it grew, so Badger's idle table builders stay live heap (tens of MB while
// it builds tables for a backlog; scripts/patch-ristretto.sh, fix 3).
func TestAllocatorPoolKeepsNothing(t *testing.T) {
	p := z.NewAllocatorPool(8)
	defer p.Release()
	a := p.Get(1024, "edgegate-test")
	a.Allocate(64 << 10) // grows past its first buffer
	p.Return(a)
	if b := p.Get(1024, "edgegate-test"); b == a || b.Allocated() > 1024 {
		t.Fatalf("the pool handed back a returned allocator (%d bytes allocated): unpatched ristretto keeps builders' buffers alive", b.Allocated())
	}
}

// roundTripPayload is a deterministic ~200 byte payload for record i.
func roundTripPayload(i int) []byte {
	p := make([]byte, 180+i%41)
	binary.BigEndian.PutUint64(p, uint64(i))
	x := uint32(i)*2654435761 + 1
	for j := 8; j < len(p); j++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[j] = byte(x)
	}
	return p
}

// TestRoundTrip100k writes 100k ~200 B records, reopens, forces compaction
// (Flatten) and value-log GC, and reads every record back byte for byte.
func TestRoundTrip100k(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 100k records")
	}
	const n, batch = 100_000, 500
	cfg := testConfig(t)
	b, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, b)
	recs := make([]Record, 0, batch)
	for i := 0; i < n; i += batch {
		recs = recs[:0]
		for j := i; j < i+batch; j++ {
			recs = append(recs, Record{Queue: "rt", Data: roundTripPayload(j)})
		}
		if err := b.Append(context.Background(), recs, true); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = open(t, cfg, nil)
	if err := b.db.Flatten(2); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	b.runGC(context.Background())
	if s := b.Stats(); s.Records != n {
		t.Fatalf("reopened with %d records, want %d", s.Records, n)
	}
	q := queueT(t, b, "rt")
	i := 0
	for i < n {
		bt := nextT(t, q, 5000, 0)
		for _, r := range bt.Records() {
			if want := roundTripPayload(i); !bytes.Equal(r, want) {
				t.Fatalf("record %d: got %d bytes %x..., want %d bytes %x...", i, len(r), r[:min(len(r), 16)], len(want), want[:16])
			}
			i++
		}
		if err := bt.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	noNext(t, q)
	if err := b.db.Flatten(2); err != nil {
		t.Fatalf("Flatten after acks: %v", err)
	}
	wantStats(t, b, 0, 0)
}
