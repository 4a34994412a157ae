#!/usr/bin/env bash
# smoke-arm.sh: the real armv7 gateway binary, end to end, under qemu.
#
# Builds edgegate for linux/arm GOARM=7 (through build/go.work, i.e. with the
# patched ristretto), runs it under qemu-arm-static with the uplink down,
# publishes N QoS 1 messages with "edgegate simulate" (native), kills the
# gateway with SIGKILL, restarts it with "edgegate sink" listening and checks
# that all N events arrive (duplicates allowed only as repeated ids).
# Run through make (GOWORK must point at build/go.work).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
: "${GOWORK:?run via make (GOWORK must point at build/go.work)}"
n_devices=${SMOKE_DEVICES:-5}
n_each=${SMOKE_COUNT:-200}
want=$((n_devices * n_each))

bash scripts/ensure-qemu.sh
mkdir -p build
CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 go build -trimpath -o build/edgegate.armv7 ./cmd/edgegate
CGO_ENABLED=0 go build -trimpath -o build/edgegate.native ./cmd/edgegate

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
mqtt=$(port); admin=$(port); up=$(port)
cat >"$tmp/edgegate.yaml" <<YAML
gateway_id: smoke-armv7
log: {level: warn}
admin: {listen: "127.0.0.1:$admin"}
mqtt:
  listeners: [{id: tcp, type: tcp, address: "127.0.0.1:$mqtt"}]
buffer: {dir: "$tmp/buffer", min_free_bytes: 16MiB}
events: {presence: {enabled: false}}   # count device messages only
uplinks:
  - {name: cloud, http: {url: "http://127.0.0.1:$up/"}, retry: {initial: 50ms, max: 500ms}}
YAML

start_gateway() {
	qemu-arm-static -cpu cortex-a7 build/edgegate.armv7 run --config "$tmp/edgegate.yaml" >>"$tmp/gateway.log" 2>&1 &
	gw=$!
	pids+=("$gw")
	for _ in $(seq 1 200); do
		curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "smoke-arm: gateway not ready"; cat "$tmp/gateway.log"; exit 1
}

start_gateway
build/edgegate.native simulate --broker "tcp://127.0.0.1:$mqtt" --devices "$n_devices" --count "$n_each" --rate 0 --qos 1 >"$tmp/sim.log" 2>&1 || {
	echo "smoke-arm: simulate failed"; cat "$tmp/sim.log"; exit 1
}
kill -9 "$gw"; wait "$gw" 2>/dev/null || true

build/edgegate.native sink --listen "127.0.0.1:$up" --format json >"$tmp/sink.jsonl" 2>/dev/null &
pids+=("$!")
start_gateway
got=0
for _ in $(seq 1 300); do
	got=$({ grep -o '"id":"[^"]*"' "$tmp/sink.jsonl" || true; } | sort -u | wc -l)
	[ "$got" -ge "$want" ] && break
	sleep 0.1
done
total=$(grep -c '"id"' "$tmp/sink.jsonl" || true)
echo "smoke-arm: armv7 gateway under qemu: acked $want, after kill -9 and restart received $got distinct ($((total - got)) duplicates)"
[ "$got" -eq "$want" ] || { tail -20 "$tmp/gateway.log"; exit 1; }
