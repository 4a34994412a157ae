package gateway

import (
	"log/slog"

	"github.com/edgegate/edgegate/buffer"
)

// BufferReport is what CheckBuffer found or RepairBuffer salvaged.
type BufferReport = buffer.Report

// ErrBufferDamaged is CheckBuffer's and the buffer's open error for damaged
// files (buffer.ErrDamaged).
var ErrBufferDamaged = buffer.ErrDamaged

// CheckBuffer reads everything in a stopped gateway's buffer in dir without
// changing it (buffer.Check): `edgegate buffer check`. It fails with
// ErrBufferLocked while a gateway has the buffer open. log may be nil.
func CheckBuffer(dir string, log *slog.Logger) (BufferReport, error) { return buffer.Check(dir, log) }

// RepairBuffer salvages every readable record of a stopped gateway's
// buffer in dir into a fresh buffer there and keeps the damaged one aside
// (buffer.Repair): `edgegate buffer repair`. log may be nil.
func RepairBuffer(dir string, log *slog.Logger) (BufferReport, error) {
	return buffer.Repair(dir, log)
}
