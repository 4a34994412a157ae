// Package buffer is edgegate's durable event store: a Badger database of
// opaque []byte records kept in named ordered queues (the gateway keeps one
// per uplink and one per dead-letter target). An event routed to two
// uplinks is two records.
//
// # Durability
//
// Appends are group-committed: one committer goroutine (run by Run) gathers
// every pending Append into one transaction and one fsync, then releases all
// waiting callers, so a nil error from Append means the records survive
// kill -9 and power loss. Badger runs with SyncWrites, so every commit is an
// fsync. (SyncWrites off plus db.Sync after each round was rejected: Sync only
// syncs the current memtable's WAL, and a concurrent write that rotates the
// memtable between our commit and our Sync leaves our records in an unsynced
// WAL.)
//
// Acks' deletes go through the same committer: they share the round's
// transaction and fsync with the appends pending, or are committed alone
// when there are none (ackcommit.go), because every Badger commit syncs
// two logs whatever it holds. commit_interval spaces the rounds for
// flash storage: each commit writes whole pages of the log.
//
// # Bounds
//
// Stored records are bounded by max_bytes (logical bytes: the sum of record
// data lengths), max_age, and free disk space, watched with statfs because
// Badger dies with SIGBUS on a full disk. When max_bytes would be exceeded,
// drop_oldest deletes the oldest records across all queues and reject
// refuses the Append with ErrFull.
//
// Ages (max_age, retain, the append times a Batch reports) follow the
// monotonic clock across steps of the wall clock a running buffer sees
// (watched every second, counted in edgegate_clock_jumps_total), and append
// times from a clock that was never set count as stored at Open: see
// clock.go. Order is by sequence, never by time.
//
// # Disk space
//
// Badger writes on its own after the appends that cause it (memtable
// flushes; compactions, which write their output before deleting their
// input and may rewrite every table). So the buffer keeps free, besides
// min_free_bytes for the rest of the system, Badger's worst case for what
// it holds: its tables again, twice its memtable logs, and 16 MiB (see
// space.go). Below that floor every Append fails with ErrFull; Next and Ack
// go on, and appends resume once deletes have been compacted away. Part of
// that room is held as a 16 MiB reserve file, given up when the free space
// no longer covers Badger's worst case and allocated again once it does.
// Open refuses (ErrNoSpace) rather than open Badger without that room,
// after giving up the reserve if that is enough; a panic or a fault on a
// mapped file while Badger opens is returned as an error.
//
// # Damage
//
// Open reads every table's index first, where a panic can be caught
// (Badger reads them in goroutines of its own, where a damaged table kills
// the process), and refuses tables without a MANIFEST (Badger would delete
// them): ErrDamaged. Check reads everything without changing the buffer;
// Repair salvages every readable record into a fresh buffer and keeps the
// damaged one aside (salvage.go).
//
// # Queues and leases
//
// Queue.Next leases the oldest records not yet leased; Batch.Ack deletes
// them and Batch.Nack hands them back, to be returned again before newer
// ones. Delivery is at-least-once: a crash may redeliver acked records, and
// leases do not survive a restart. A queue keeps its newest committed
// records in memory (at most 256 KiB, recent.go), so a consumer that keeps
// up never reads Badger: a Badger read waits for the commit in flight.
//
// # Inspection and retained history
//
// Queues, List and Get read what is stored without leasing it (the admin
// API's and `edgegate buffer`'s listing); Delete removes records by seq,
// also from under a running consumer. With retain, Ack moves delivered
// records to the queue's history (RetainedName: "retained." + name)
// instead of deleting them, keeping their append time, so they can be
// replayed on demand; Batch.Forget keeps an undelivered record out. A
// history counts in max_bytes, goes when older than retain, and is removed
// first whenever room is needed (under either policy, counted in
// edgegate_buffer_retained_removed_total, not as dropped).
//
// Open with ReadOnly reads a stopped gateway's buffer without writing. A
// second process cannot open a buffer in use (Badger locks the directory):
// Open then fails with ErrLocked.
//
// # Marks
//
// An Append may store a Mark (key, value) with each record; Mark looks the
// most recent ones up from memory, also after their record is acked. The
// gateway marks each QoS 1/2 device message with its client and packet id
// to recognise the resend of a message that was stored but whose
// acknowledgement was lost. The index is saved periodically and when Run
// returns, and rebuilt at Open from that and each queue's newest records.
//
// # Opening with a backlog
//
// Open does not read the backlog: it seeks each queue's oldest and newest
// record, reads the resend marks of the newest, and takes the records and
// bytes of each queue from the counts Close saved at the last clean stop
// (valid only if nothing was written after them). After an unclean stop
// the records are counted, exactly, from a snapshot taken at Open: in Open,
// or with WithLazyCount in Run while the buffer is in use, Stats.Counting
// saying so (load.go).
//
// # Lifecycle
//
// Open opens Badger and starts no goroutines. Run runs the committer, the
// expiry sweeper, value-log GC, the disk guard, the mark saver, the trim
// of mapped table pages (trim.go) and a lazy count until its context ends; Append needs Run to be active and fails with ErrClosed once
// it has returned. Next, Ack, Nack, Queues, List, Get and Delete work from
// Open until Close. Close is called after Run has returned.
//
// # Imports
//
// buffer knows nothing of CloudEvents, MQTT or HTTP and must not import other
// edgegate packages but internal/yamlconf (its config errors and ByteSize)
// and internal/metricname (its metric names). On 32-bit ARM it must be built
// against the patched ristretto that scripts/patch-ristretto.sh prepares
// (GOWORK=build/go.work).
//
// # Concurrency
//
// Append, Mark, Queue, Next, Stats, Refusing, Ack, Nack, Queues, List, Get
// and Delete are safe for concurrent use. One consumer per queue is expected,
// but it may hold several batches at once and ack them in any order;
// Forget is called before Ack, by the batch's holder. A record Delete
// removes while leased stays in its batch, but the batch's Ack or Nack no
// longer counts it or hands it out again.
package buffer
