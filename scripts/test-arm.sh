#!/usr/bin/env bash
# test-arm.sh: run the buffer's 32-bit ARM data-loss guards under qemu-user.
#
# Builds the buffer test binary for armv7 (and armv6) against the patched
# ristretto (build/go.work, made by scripts/patch-ristretto.sh) and runs the
# allocator test and the 100k-record round trip under qemu-arm-static.
#
#   scripts/test-arm.sh            patched build; must pass
#   scripts/test-arm.sh --unpatched  plain build (GOWORK=off); expected to FAIL
#   ARM_VARIANTS="7" scripts/test-arm.sh   only armv7
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=patched
if [ "${1:-}" = "--unpatched" ]; then
	mode=unpatched
fi
variants=${ARM_VARIANTS:-"7 6"}
tests='^(TestAllocatorPastFirstBuffer|TestRoundTrip100k)$'

bash scripts/ensure-qemu.sh

if [ "$mode" = patched ]; then
	bash scripts/patch-ristretto.sh
	gowork="$root/build/go.work"
else
	gowork=off
fi
mkdir -p build

status=0
for v in $variants; do
	case $v in
	7) cpu=cortex-a7 ;;
	6) cpu=arm1176 ;;
	*) echo "test-arm: unknown ARM variant $v" >&2; exit 2 ;;
	esac
	bin="build/buffer.armv$v.$mode.test"
	GOWORK=$gowork CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=$v go test -c -o "$bin" ./buffer
	echo "test-arm: armv$v ($mode ristretto) under qemu-arm-static -cpu $cpu"
	start=$(date +%s)
	if (cd buffer && qemu-arm-static -cpu "$cpu" "../$bin" -test.run "$tests" -test.v -test.count=1 -test.timeout=5m); then
		echo "test-arm: armv$v $mode: PASS ($(($(date +%s) - start))s)"
	else
		echo "test-arm: armv$v $mode: FAIL ($(($(date +%s) - start))s)"
		status=1
	fi
done
exit $status
