// Package configstore keeps the configurations a gateway applied on disk:
// a state directory (next to the buffer, `<dir of buffer.dir>/config/`)
// with the last N documents under history/ (each `<version>-<hash12>.yaml`,
// plus `.sig` when it came with a detached signature), index.json listing
// them with their source, origin and time, and active.json naming the one
// in effect with the hash the local configuration file had when it was
// applied (the start-up rule "a local edit wins" compares it).
//
// It knows nothing of what a configuration means: documents are bytes, a
// hash is a string. It must not import any other edgegate package (gateway
// owns what the documents mean); it imports only the standard library.
//
// Every write is atomic: a temporary file, fsync, rename, fsync of the
// directory; a crash leaves the old file or the new one, never half of
// one. A Store is safe for concurrent use (one mutex); one process owns a
// state directory.
package configstore
