// Command edgegate is the edge gateway: an MQTT broker for devices that turns
// every message into a CloudEvent, keeps it in a durable disk buffer and
// forwards it to cloud endpoints.
//
//	edgegate run --config FILE        run the gateway
//	edgegate validate --config FILE   check a configuration file, report every error
//	edgegate status                   health, uplinks, backlog and devices of a running gateway
//	edgegate buffer stats|ls|show|replay|purge
//	                                  inspect, replay and purge stored events
//	edgegate buffer check|repair      find and salvage a damaged buffer
//	edgegate passwd                   hash a device secret
//	edgegate sink                     print the CloudEvents an uplink would deliver
//	edgegate simulate                 simulated devices publishing telemetry
//	edgegate rules test --config FILE run the rules' own test cases
//	edgegate bench                    benchmark this binary next to the raw broker
//	edgegate config reference         print the configuration reference
//	edgegate completion bash|zsh|fish shell completion
//	edgegate version
//
// The package is main only: the command line (spf13/cobra), signals, the
// logger, the metrics set and printing. cli.go holds the tree: app (the
// streams every command shares; no package-level state), newRootCmd, the
// exit codes (0 ok, 1 error, 2 usage, 130 on a second signal) and the
// usage template; each command group has its own file with a
// newXCmd(*app) *cobra.Command constructor that newRootCmd adds.
//
// The gateway's work is gateway's (LoadFile, New, Run, ReloadFile on
// SIGHUP, DryRun for `rules test`, BufferClient for the admin API that
// `status` and `buffer` call on a running gateway, BufferTool, CheckBuffer
// and RepairBuffer for a stopped one's buffer through
// gateway.OpenBufferTool); sink and simulate are built on internal/receiver
// and internal/devices, bench is internal/bench (which owns its flags);
// `config reference` prints the generated reference package docs embeds.
// It must not import buffer or uplink (gateway wires them) or the test
// support packages (internal/cetest, internal/mqtttest); code that other
// programs or tests could use belongs in a package, not here. It is the
// only place where the process exits (os.Exit).
//
// Concurrency: each command runs on the main goroutine. A signal goroutine
// cancels the command's context on the first SIGINT or SIGTERM and exits at
// once (status 130) on the second; `run` adds one that reloads on SIGHUP
// until the context ends.
package main
