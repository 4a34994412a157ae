#!/usr/bin/env bash
# interop.sh: the Eclipse Paho interoperability suites (MQTT 3.1.1
# interoperability/client_test.py and MQTT 5 client_test5.py, Python 3
# only) against the real gateway binary, run with
# configs/interop/edgegate.yaml.
#
# The suites are not on any registry this project uses: check out
# https://github.com/eclipse/paho.mqtt.testing and point PAHO_TESTING at it.
#   make interop PAHO_TESTING=/path/to/paho.mqtt.testing
# Prints each suite's passed/total and the tests that failed; exits 1 when
# any failed. Ports 21883 (MQTT) and 28080 (admin) must be free.
# INTEROP_CONFIG overrides the configuration.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${BIN:-$root/bin/edgegate}
config=${INTEROP_CONFIG:-$root/configs/interop/edgegate.yaml}
port=21883
admin=127.0.0.1:28080

if [ -z "${PAHO_TESTING:-}" ]; then
	echo "make interop: set PAHO_TESTING to a checkout of https://github.com/eclipse/paho.mqtt.testing" >&2
	echo "  (git clone https://github.com/eclipse/paho.mqtt.testing; make interop PAHO_TESTING=\$PWD/paho.mqtt.testing)" >&2
	exit 2
fi
suites=$PAHO_TESTING/interoperability
for f in client_test.py client_test5.py; do
	if [ ! -f "$suites/$f" ]; then
		echo "make interop: $suites/$f not found: PAHO_TESTING must point at a paho.mqtt.testing checkout" >&2
		exit 2
	fi
done
command -v python3 >/dev/null || { echo "make interop: python3 is needed to run the suites" >&2; exit 2; }
[ -x "$bin" ] || { echo "make interop: $bin not built (make build)" >&2; exit 2; }

work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$work" && exec "$bin" run --config "$config") >"$work/edgegate.log" 2>&1 &
pid=$!
# Ready when /readyz answers 200 (python3 is at hand; curl may not be).
if ! python3 - "$admin" <<'PY'; then
import sys, time, urllib.request
for _ in range(200):
    try:
        if urllib.request.urlopen("http://%s/readyz" % sys.argv[1], timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
	echo "make interop: the gateway did not become ready; its log:" >&2
	tail -20 "$work/edgegate.log" >&2
	exit 1
fi

failed=0
for suite in client_test.py client_test5.py; do
	log=$work/${suite%.py}.log
	echo "== $suite against $bin ($config)"
	# The suites read host and port from argv and then hand argv to
	# unittest, which refuses them: give unittest only the program name.
	(cd "$suites" && python3 - "$suite" "$port" <<'PY') >"$log" 2>&1 || true
import os, runpy, sys, unittest
suite, port = sys.argv[1], sys.argv[2]
main = unittest.main
unittest.main = lambda *a, **k: main(*a, argv=[suite], **k)
sys.argv = [suite, "--hostname=127.0.0.1", "-p", port]  # client_test5 removes "-p" itself
sys.path.insert(0, os.getcwd())
runpy.run_path(suite, run_name="__main__")
PY
	ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' "$log" | tail -1)
	bad=$(grep -cE '^(FAIL|ERROR): ' "$log" || true)
	if [ -z "$ran" ]; then
		echo "$suite did not run; its output:"
		tail -30 "$log"
		failed=1
		continue
	fi
	echo "$suite: passed $((ran - bad))/$ran"
	if [ "$bad" -gt 0 ]; then
		grep -E '^(FAIL|ERROR): ' "$log" | sed 's/^/  /'
		failed=1
	fi
done
if [ "$failed" -ne 0 ]; then
	keep=$(mktemp -d "${TMPDIR:-/tmp}/edgegate-interop.XXXXXX")
	cp "$work"/*.log "$keep"/
	echo "logs (suites and gateway): $keep"
fi
exit $failed
