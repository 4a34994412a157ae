#!/usr/bin/env bash
# release.sh: the release artefacts, in dist/ (run through "make release").
#
# For each target (linux/amd64, arm64, armv7, armv6; RELEASE_TARGETS
# narrows the list, e.g. "amd64") it builds a stripped static binary
# (CGO_ENABLED=0, -trimpath, -s -w) stamped with version, commit and build
# date (scripts/ldflags.sh), and packs it with what an install needs:
#
#   dist/edgegate-linux-<arch>                      the binary alone
#   dist/edgegate-<version>-linux-<arch>.tar.gz     edgegate, configs/
#       (with the JSON Schemas), scripts/install.sh, scripts/uninstall.sh,
#       README.md, docs/config.md
#   dist/SHA256SUMS                                 sha256sum -c checks them all
#
# The host's own binary is run to check that it prints the stamped version;
# cmd/edgegate's TestRelease checks the rest (static, archive contents,
# checksums) on a real run of this script.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
: "${GOWORK:?run via make release (GOWORK must point at build/go.work)}"
ldflags=$(scripts/ldflags.sh)
version=$(sed 's/.*main.version=\([^ ]*\).*/\1/' <<<"$ldflags")
targets=${RELEASE_TARGETS:-amd64 arm64 armv7 armv6}
out=${RELEASE_DIR:-dist}
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

host=$(go env GOARCH)
sums=()
for t in $targets; do
	arch=$t arm=""
	case $t in
	armv7 | armv6) arch=arm arm=${t#armv} ;;
	amd64 | arm64) ;;
	*) echo "release: unknown target $t (amd64, arm64, armv7, armv6)" >&2; exit 2 ;;
	esac
	bin="$out/edgegate-linux-$t"
	echo "release: building $bin"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=$arm \
		go build -trimpath -ldflags "$ldflags" -o "$bin" ./cmd/edgegate
	if [ "$arch" = "$host" ] && [ -z "$arm" ]; then
		"$bin" version | grep -qF "$version" || { echo "release: $bin does not print version $version" >&2; exit 1; }
	fi
	pkg="edgegate-$version-linux-$t"
	rm -rf "${stage:?}/$pkg"
	mkdir -p "$stage/$pkg/scripts" "$stage/$pkg/docs"
	cp "$bin" "$stage/$pkg/edgegate"
	cp -r configs "$stage/$pkg/"
	cp scripts/install.sh scripts/uninstall.sh "$stage/$pkg/scripts/"
	cp README.md "$stage/$pkg/"
	cp docs/config.md "$stage/$pkg/docs/"
	tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out/$pkg.tar.gz" "$pkg"
	sums+=("edgegate-linux-$t" "$pkg.tar.gz")
done
(cd "$out" && sha256sum "${sums[@]}" >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
echo "release: $(wc -l <"$out/SHA256SUMS") files in $out, checksums in $out/SHA256SUMS"
