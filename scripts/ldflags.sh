#!/usr/bin/env bash
# ldflags.sh: prints the go build -ldflags every edgegate build uses: strip
# symbols and DWARF (-s -w) and stamp main.version, main.commit and
# main.date, which "edgegate version" prints. VERSION overrides the version
# (default: git describe); outside a git checkout the stamps say "dev" and
# "unknown". The date is the commit's, so two builds of one commit match.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)
echo "-s -w -X main.version=$version -X main.commit=$commit -X main.date=$date"
