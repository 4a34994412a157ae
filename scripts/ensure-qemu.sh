#!/usr/bin/env bash
# ensure-qemu.sh: install qemu-user-static (for the 32-bit ARM tests) with
# apt-get when qemu-arm-static is missing; uses sudo when not root.
set -euo pipefail
command -v qemu-arm-static >/dev/null 2>&1 && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing qemu-user-static (for the armv7/armv6 tests)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq qemu-user-static >/dev/null
