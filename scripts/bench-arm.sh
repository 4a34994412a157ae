#!/usr/bin/env bash
# bench-arm.sh: the armv7 build's throughput under qemu-user, as a figure
# relative to the same run of the native build (issue 13). Builds both
# (through build/go.work: the patched ristretto), runs `edgegate bench`
# natively against each — the armv7 gateway under qemu-arm-static
# -cpu cortex-a7 — with the same flags, and prints both tables one after
# the other.
# qemu-user emulates every instruction, so only the ratio means anything,
# and it says how much slower emulation is, not how fast a Pi is. Extra
# flags for both runs: BENCH_ARM_FLAGS. Run through make bench-arm.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
: "${GOWORK:?run via make (GOWORK must point at build/go.work)}"
flags=${BENCH_ARM_FLAGS:---mode batch --qos 1 --devices 50 --messages 400 --rate 0 --ceiling=false --startup 100000 --startup-drain 10s}

bash scripts/ensure-qemu.sh
mkdir -p build
CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 go build -trimpath -o build/edgegate.armv7 ./cmd/edgegate
CGO_ENABLED=0 go build -trimpath -o build/edgegate.native ./cmd/edgegate
cat >build/edgegate.armv7-qemu <<SH
#!/bin/sh
exec qemu-arm-static -cpu cortex-a7 "$root/build/edgegate.armv7" "\$@"
SH
chmod +x build/edgegate.armv7-qemu

echo "== native"
# shellcheck disable=SC2086 # flags are words
build/edgegate.native bench $flags
echo "== armv7 under qemu-arm-static -cpu cortex-a7"
# shellcheck disable=SC2086
build/edgegate.native bench $flags --edgegate build/edgegate.armv7-qemu
echo "Compare the two tables above: the armv7 figures as a share of the native ones."
