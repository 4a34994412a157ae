// Package gateway wires edgegate together. It owns:
//
//   - the top-level Config and its loading: LoadFile and Parse decode,
//     validate and compile a file once (mapping, rules, uplinks) into a
//     Compiled, which New takes and ReloadFile applies;
//   - the pipeline of one device message (Handle): MQTT message →
//     cloudevent record → rules → disk buffer, and the rules' local
//     publishes and ticks; DryRun takes the same mapping and rules steps
//     without a buffer, for `edgegate rules test`;
//   - the forwarders, one per uplink: buffer batch → uplink.Delivery →
//     dead letters → ack; the running set of them (uplinks.go) is
//     replaced live by applyUplinks: a changed uplink's new generation
//     takes over its queue after the old one finished or abandoned its
//     batch in hand, a removed one's backlog stays on disk (or is dropped
//     when the reload says so);
//   - the one apply path of every configuration change (Apply, apply.go:
//     the local file on SIGHUP and POST /-/reload, PUT /v1/config, pull
//     and MQTT channels, rollbacks): everything valid or nothing changes, a
//     field that needs a restart is an error naming it down to the leaf
//     (restartOnlyFields), applyConfig makes it current; applied
//     configurations are kept in the state directory (internal/configstore)
//     and used again at start while the local file is unchanged
//     (LoadStartup); each outcome is logged, counted and reported as an
//     io.edgegate.config.* event; a health window after a remote apply
//     rolls back a configuration that makes things worse (health.go);
//   - signed configurations (signatures.go): the public keys of
//     remote_config decide, through configsign, whether a document from a
//     remote source is signed and newer; the local file and rollbacks are
//     trusted; and the config channels that need no inbound connection
//     (channels.go): remote_config.pull and the MQTT config topic on an MQTT
//     uplink's own connection (configchannel), started by Run, following
//     their uplink when it changes live;
//   - the admin HTTP endpoint: /healthz and /readyz open to probes, the
//     status page's files (internal/statuspage) open too, and /metrics,
//     /status, /v1/uplinks, the live tail /v1/events (internal/tail),
//     POST /-/reload and every other route behind the bearer tokens of
//     admin.tokens (checked against their hashes, verified tokens
//     remembered by a keyed hash), optionally over TLS;
//   - what ready means (notReady: device intake open, the MQTT listeners
//     bound and the buffer accepting events; uplinks are not part of it)
//     and what /status reports (status.go);
//   - the buffer tools (BufferTool): stored events listed, shown, replayed
//     to an uplink and purged, read as CloudEvents — served under
//     /v1/buffer/ on a running gateway (behind the admin tokens), and
//     opened on a stopped gateway's buffer by OpenBufferTool /
//     OpenBufferDir for `edgegate buffer`;
//   - device access: the auth section is compiled by package access with
//     the MQTT listeners it guards (the cross-section anonymous check),
//     adapted to mqtt.Access and swapped into the broker at start and at
//     every reload;
//   - the lifecycle that starts and stops everything in order.
//
// gateway is the only package that imports the other edgegate packages
// (access, buffer, mqtt, rules, uplink, cloudevent, internal/yamlconf,
// internal/metricname, internal/certfile, internal/ratelog, internal/tail,
// internal/statuspage, internal/configstore, configsign, configchannel, overload).
// Logic that grows here moves to a leaf package. It
// must not import mochi, paho, Badger or sdk-go (mqtt, uplink and buffer own
// them), the tools' packages (internal/receiver, internal/devices) or test
// support (internal/cetest, internal/mqtttest).
//
// Lifecycle: New opens the buffer and builds every component, and starts no
// goroutines. A buffer that cannot be opened (disk too full for Badger,
// damaged, unreadable) does not stop the gateway: it listens, refuses every
// event, answers /readyz 503 with the reason, and Run opens the buffer as
// soon as it can (bufferstate.go). Run serves until its context ends or a component fails, then
// stops MQTT intake, lets the forwarders finish their in-flight sends within
// shutdown_timeout and stops and closes the buffer; every goroutine it
// started has exited when it returns.
//
// Concurrency: the broker calls Handle concurrently, one call at a time per
// client. Each message uses one snapshot of what a reload may change
// (mapper, rules, routes), swapped atomically; Apply (and ReloadFile,
// Rollback) is safe while Run is active, and applies run one at a time
// (reloadMu); the health window's goroutine is Run's (it ends before Run
// returns) and takes reloadMu to roll back; so are the config channels'
// goroutines, which call Apply. Each forwarder is the one
// consumer of its uplink's queue: one delivery loop, with acks written
// beside it; a change of the uplinks (upMu, taken inside reloadMu) starts a
// changed uplink's new forwarder only once the old one has returned, so a
// queue never has two. The set is read lock-free (an atomic pointer to a
// set that is never modified). One of Run's intake goroutines samples the
// broker's intake and the uplinks' backlogs and deliveries each second and
// hands the broker the intake limit package overload derives (overload.go);
// it lifts the limit when it returns. A
// DryRun is safe for concurrent use. Admin requests are served
// concurrently; the token checker is swapped atomically by a reload, and
// slow hash verifications run one at a time. A BufferTool is safe for
// concurrent use: its replays and purges run one at a time, beside the
// forwarders (they append with the buffer's group commit and delete with
// buffer.Delete, which a consumer tolerates).
package gateway
