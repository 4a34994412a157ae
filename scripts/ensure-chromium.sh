#!/usr/bin/env bash
# ensure-chromium.sh: install Debian's chromium (for the status page's
# browser test, driven by chromedp) with apt-get when it is missing; uses
# sudo when not root. Prints the browser's path.
set -euo pipefail
find_browser() {
	for b in chromium chromium-browser google-chrome; do
		if command -v "$b" >/dev/null 2>&1; then
			command -v "$b"
			return 0
		fi
	done
	return 1
}
find_browser && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing chromium (for the status page's browser test)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
find_browser
