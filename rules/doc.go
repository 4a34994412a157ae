// Package rules compiles and evaluates edgegate's YAML rules (expr-lang
// expressions). It does no I/O.
//
// rules must not import buffer, mqtt, uplink or gateway.
package rules
