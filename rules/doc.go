// Package rules compiles and evaluates edgegate's YAML rules (expr-lang
// expressions): filter, transform, aggregate, route and act locally. It does
// no I/O: it never reads files, sockets or clocks; time comes in as
// arguments. The gateway applies the Decisions.
//
// rules must not import buffer, mqtt, uplink or gateway; it reads and writes
// events as cloudevent records (FromRecord, Event.Record). Its configuration
// problems are *yamlconf.Error (internal/yamlconf): a path from the section
// and, for an expression, the position inside it. Of edgegate's packages it
// imports only cloudevent, internal/yamlconf and internal/metricname (the
// names WritePrometheus writes).
//
// # Configuration
//
//	rules:
//	  max_keys: 10000                    # per rule: state entries kept (LRU beyond)
//	  schemas:                           # optional JSON Schema of data, per event type
//	    - type: io.edgegate.device.telemetry
//	      on_invalid: dead_letter        # dead_letter (default) | drop | tag (ext.schemaerror)
//	      schema: { type: object, required: [temperature] }
//	  rules:                             # evaluated in order for every event
//	    - name: overheat                 # unique, required
//	      when: data.temperature > 30    # expr boolean; omitted: always
//	      key: subject                   # state key of stateful functions/actions (default subject)
//	      on_error: skip                 # skip (default) | drop | dead_letter
//	      actions:                       # in order, one kind per list item
//	        - set: { data.temperature_f: "data.temperature * 9 / 5 + 32", type: "'io.acme.reading'" }
//	        - remove: [data.raw]
//	        - emit: { type: io.acme.alert.overheat, data: "{'device': subject}", route: [cloud] }
//	        - publish: { topic: "'devices/' + subject + '/cmd/fan'", payload: "{'on': true}", qos: 1 }
//	        - route: [cloud]
//	        - aggregate: { value: data.temperature, every: 1m, size: 5m, emit: { type: io.acme.avg } }
//	        - stale: { after: 10m, emit: { type: io.acme.silent } }
//	        - dead_letter: "'too hot to handle'"
//	        - drop: true
//	  tests: [...]                       # see Test; run by `edgegate rules test`
//
// Plain names: emit/aggregate/stale `type`, `route` lists (uplink names, checked
// at load). Everything else (`when`, `key`, `set` values, emit
// source/subject/data, publish topic/payload, dead_letter) is an expression.
//
// # Expressions
//
// See Env for the variables (id, source, type, subject, time, datacontenttype,
// data, ext, topic, segments, client_id, gateway_id) and expr-lang's
// language definition for operators and builtins (now() is disabled: use
// time). Every expression is compiled and type-checked at load; one has at
// most MaxNodes nodes and a run at most MemoryBudget of expr's memory units.
// A runtime error (nil field, division by zero, wrong type) is a RuleError
// for that rule only: none of the rule's actions take effect and on_error
// decides: skip (the rule does not match), drop, or dead_letter.
//
// # Semantics
//
// Rules run in order and see the event as changed by earlier rules' set and
// remove actions. route adds uplinks; when no rule routes, the event takes the
// default route (every uplink). drop and dead_letter end the evaluation.
// Emitted events (emit, aggregate, stale) go to their emit's route (default:
// every uplink) and are never evaluated by the rules, so rules cannot loop.
// Their id is a UUIDv7, their source /edgegate/{gateway_id}/rules/{rule},
// their subject the event's subject (emit) or the key (aggregate, stale).
//
// # State
//
// Stateful functions and actions keep state per rule, per key (the rule's
// `key`, default subject) and per call (its arguments), in memory:
//
//   - changed(v[, by]): true for a key's first value and whenever v moved
//     more than by (deadband) from the last value that passed; that value
//     becomes the reference. Without by, any change.
//   - prev(v): v at the key's previous evaluation (nil the first time).
//   - duplicate(v, '30s'): true when the key saw the same v within the window
//     (counted from the first sighting).
//   - sample('1m'): true for one event per key per period.
//   - limit(10, '1m'): true for at most 10 events per key per window.
//   - aggregate: count, sum, min, max, avg of a value per key in windows
//     aligned on multiples of `every` (processing time). Tumbling when size
//     = every, sliding (a window of `size` closing every `every`, size ≤ 60 ×
//     every) otherwise. A window that saw data emits when it closes: on the
//     key's next event or on Tick.
//   - stale: a key that matched the rule and has then been silent for
//     `after` is reported once by Tick, again only after it reports anew.
//
// State only changes when evaluated: a function behind a false && is not
// called. Identical calls in one evaluation share one result. Each rule keeps
// at most max_keys entries (one per key and function/action, one per
// distinct value for duplicate); beyond, the least recently used is
// forgotten (a window loses its partial aggregate, a stale watch its key).
// Expired entries are freed by Tick. State survives a reload for rules that
// keep their name (CarryStateFrom); it does not survive a restart.
//
// # Concurrency
//
// A *Set is immutable after Compile apart from its state and counters, which
// are synchronised: Evaluate, Tick and Stats are safe for concurrent use.
// Evaluate uses pooled VMs: one allocation per event (the environment) and
// none per rule on the match-nothing path.
package rules
