#!/usr/bin/env bash
# install.sh: install edgegate as a systemd service on a Raspberry Pi or an
# edge box. Run as root from the repository (after "make build" or
# "make release") or from an unpacked release archive (dist/edgegate-*.tar.gz):
#
#   sudo scripts/install.sh [BINARY]      # default: bin/edgegate
#
# Installs BINARY to /usr/local/bin/edgegate, the default config to
# /etc/edgegate/edgegate.yaml (kept if it exists) with the buffer under
# /var/lib/edgegate, a dedicated "edgegate" system user, and
# edgegate.service (reload: systemctl reload edgegate = SIGHUP).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin/edgegate}
[ -x "$bin" ] || { echo "install: $bin not found or not executable (run make build, or pass dist/edgegate-linux-<arch>)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "install: run as root" >&2; exit 1; }

"$bin" version >/dev/null || { echo "install: $bin does not run on this machine (wrong architecture?)" >&2; exit 1; }
id edgegate >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edgegate --shell /usr/sbin/nologin edgegate
install -d -o edgegate -g edgegate -m 0750 /var/lib/edgegate
install -d -m 0755 /etc/edgegate
install -m 0755 "$bin" /usr/local/bin/edgegate
if [ ! -f /etc/edgegate/edgegate.yaml ]; then
	sed -e 's#dir: ./data/buffer#dir: /var/lib/edgegate/buffer#' configs/edgegate.yaml >/etc/edgegate/edgegate.yaml
	echo "install: wrote /etc/edgegate/edgegate.yaml (edit uplinks[0].url)"
else
	echo "install: kept the existing /etc/edgegate/edgegate.yaml"
fi
# The JSON Schemas the configs name on their first line, for editors (over
# SSH too): they belong to this binary, so they are replaced.
install -m 0644 configs/edgegate.schema.json configs/rules.schema.json /etc/edgegate/
# The config may hold uplink credentials and the users' hashes: readable by
# root and the gateway only.
chown root:edgegate /etc/edgegate/edgegate.yaml
chmod 0640 /etc/edgegate/edgegate.yaml
/usr/local/bin/edgegate validate --config /etc/edgegate/edgegate.yaml

cat >/etc/systemd/system/edgegate.service <<'UNIT'
[Unit]
Description=edgegate IoT edge gateway
After=network-online.target
Wants=network-online.target

[Service]
# edgegate tells systemd when devices can connect (READY=1) and pings the
# watchdog; a gateway that hangs is killed and restarted.
Type=notify
NotifyAccess=main
WatchdogSec=30s
User=edgegate
Group=edgegate
ExecStartPre=/usr/local/bin/edgegate validate --config /etc/edgegate/edgegate.yaml
ExecStart=/usr/local/bin/edgegate run --config /etc/edgegate/edgegate.yaml
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=2
TimeoutStopSec=30
WorkingDirectory=/var/lib/edgegate
AmbientCapabilities=CAP_NET_BIND_SERVICE
NoNewPrivileges=true
ProtectSystem=strict
ReadWritePaths=/var/lib/edgegate
ProtectHome=true
PrivateTmp=true

[Install]
WantedBy=multi-user.target
UNIT

if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable --now edgegate
	echo "install: edgegate is running: journalctl -u edgegate -f; curl localhost:8080/status"
else
	echo "install: systemd not running here; start with: edgegate run --config /etc/edgegate/edgegate.yaml"
fi
