package buffer

import "encoding/binary"

// Key layout: one byte of prefix, then
//
//	metaQueue: queue name -> 2-byte big-endian queue id
//	metaMarks: (no suffix) -> the saved mark index (see saveMarks)
//	metaCounts: (no suffix) -> every queue's counts at the last clean stop
//	           (see saveCounts)
//	record:    queue id (2 bytes) + seq (8 bytes), both big-endian ->
//	           append time (8 bytes, unix nanoseconds) + data, or with the
//	           time's markFlag set, time + mark (16 bytes) + data (appendVal)
const (
	prefixMeta    byte = 0x00
	prefixRecord  byte = 0x01
	prefixUnused  byte = 0x7f // never used: see reclaim
	metaQueue     byte = 'q'
	metaMarks     byte = 'm'
	metaMarkDelta byte = 'd'
	metaCounts    byte = 'c'

	recKeyLen   = 1 + 2 + 8
	valHeadSize = 8
)

func recKey(dst []byte, id uint16, seq uint64) []byte {
	dst = append(dst, prefixRecord)
	dst = binary.BigEndian.AppendUint16(dst, id)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func queuePrefix(id uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte{prefixRecord}, id)
}

func parseRecKey(k []byte) (id uint16, seq uint64, ok bool) {
	if len(k) != recKeyLen || k[0] != prefixRecord {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(k[1:3]), binary.BigEndian.Uint64(k[3:]), true
}

func metaQueueKey(name string) []byte {
	return append([]byte{prefixMeta, metaQueue}, name...)
}

// markFlag in a record's time field says a mark follows the time.
const markFlag = uint64(1) << 63

// appendVal appends a record value: the append time, the record's mark if
// any (hash of its key, value: 16 bytes) and the data.
func appendVal(dst []byte, now int64, mark *Mark, data []byte) []byte {
	if mark == nil {
		dst = binary.BigEndian.AppendUint64(dst, uint64(now))
		return append(dst, data...)
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(now)|markFlag)
	dst = binary.BigEndian.AppendUint64(dst, markHash(mark.Key))
	dst = binary.BigEndian.AppendUint64(dst, mark.Value)
	return append(dst, data...)
}

// splitVal returns the parts of a record value; ok is false for a value too
// short to hold them.
func splitVal(v []byte) (t int64, mark *storedMark, data []byte, ok bool) {
	if len(v) < valHeadSize {
		return 0, nil, nil, false
	}
	h := binary.BigEndian.Uint64(v)
	t, data = int64(h&^markFlag), v[valHeadSize:]
	if h&markFlag == 0 {
		return t, nil, data, true
	}
	if len(data) < markSize {
		return 0, nil, nil, false
	}
	m := &storedMark{key: binary.BigEndian.Uint64(data), val: binary.BigEndian.Uint64(data[8:])}
	return t, m, data[markSize:], true
}
