// Package faults is test support: it damages files the way failing
// storage does, for tests of what the buffer and the gateway do about it.
// GarbleBlocks breaks the trailer of a few data blocks of a Badger table
// file (a bad sector inside a table, which the table's index does not
// show).
//
// faults imports no edgegate package; only _test.go files may import it
// (gateway/layout_test.go enforces that). Its functions are safe for
// concurrent use on different files.
package faults
