#!/usr/bin/env bash
# Builds static edgegate binaries for every supported target into dist/.
# Run through "make cross" so GOWORK points at the patched ristretto.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-dev}
: "${GOWORK:?run via make cross (GOWORK must point at build/go.work)}"
mkdir -p dist
for target in amd64 arm64 arm:7 arm:6; do
  arch=${target%%:*}
  arm=""
  name="edgegate-linux-$arch"
  if [ "$arch" = arm ]; then
    arm=${target#*:}
    name="edgegate-linux-armv$arm"
  fi
  echo "building $name"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=$arm \
    go build -trimpath -ldflags "-s -w -X main.version=$version" -o "dist/$name" ./cmd/edgegate
done
ls -l dist/
