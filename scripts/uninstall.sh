#!/usr/bin/env bash
# uninstall.sh: remove what scripts/install.sh installed. Run as root:
#
#   sudo scripts/uninstall.sh           # keeps /etc/edgegate and the buffer
#   sudo scripts/uninstall.sh --purge   # also deletes the config, the buffer
#                                       # (every undelivered event!) and the
#                                       # edgegate user
#
# Stops and disables edgegate.service first, so that the gateway finishes
# its in-flight sends and closes the buffer cleanly.
set -euo pipefail
purge=false
case "${1:-}" in
"") ;;
--purge) purge=true ;;
*) echo "usage: uninstall.sh [--purge]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "uninstall: run as root" >&2; exit 1; }
root=${UNINSTALL_ROOT:-} # tests point this at a scratch tree

if [ -z "$root" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl disable --now edgegate 2>/dev/null || true
fi
rm -f "$root/etc/systemd/system/edgegate.service" "$root/usr/local/bin/edgegate"
if [ -z "$root" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
if $purge; then
	rm -rf "$root/etc/edgegate" "$root/var/lib/edgegate"
	if [ -z "$root" ] && id edgegate >/dev/null 2>&1; then userdel edgegate; fi
	echo "uninstall: removed edgegate, its config and its buffer"
else
	echo "uninstall: removed edgegate; kept $root/etc/edgegate and $root/var/lib/edgegate (--purge deletes them)"
fi
