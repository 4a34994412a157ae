// Package docs owns the documents shipped inside the binary: the
// configuration reference (config.md), generated from the configuration's
// Go types by make schema (gateway/schema_test.go) and printed by
// `edgegate config reference`.
//
// docs imports no edgegate package (it holds text, not code that reads the
// configuration). Concurrency: ConfigReference returns an immutable string;
// safe for concurrent use.
package docs
