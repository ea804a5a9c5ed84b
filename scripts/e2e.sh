#!/usr/bin/env bash
# End-to-end test of the live page: private PostgreSQL and Mosquitto, a simulated fleet,
# vigil, and the page driven in headless Chromium (tests/e2e/page.test.mjs, which starts
# and restarts vigil itself). Everything is stopped on exit, success or not.
#
#   scripts/e2e.sh                  # debug build, 20 devices x 3 metrics at 100 readings/s
#   E2E_PROFILE=release scripts/e2e.sh
#   E2E_SCRIPT=scale.mjs E2E_DEVICES=1000 E2E_RATE=2000 E2E_SOAK_S=600 scripts/e2e.sh
#                                   # the page at fleet scale: load time, memory over time
#
# Output: target/e2e/page.png (fleet), device.png, device-zoomed.png, vigil.log, sim.log.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PROFILE=${E2E_PROFILE:-debug}
DEVICES=${E2E_DEVICES:-20}
METRICS=${E2E_METRICS:-3}
RATE=${E2E_RATE:-100}
SCRIPT=${E2E_SCRIPT:-page.test.mjs}
OUT=$REPO/target/e2e
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'e2e.sh: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node not found: run scripts/setup.sh"
[ -x "$CHROMIUM" ] || die "$CHROMIUM not found: run scripts/setup.sh"
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
    log "npm ci (tests/e2e)"
    (cd tests/e2e && npm ci --no-audit --no-fund --silent)
fi

mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/*.log
log "unit tests of the page's modules"
node --test tests/e2e/modules.test.mjs >"$OUT/modules.log" 2>&1 \
    || { cat "$OUT/modules.log" >&2; die "page module tests failed"; }
grep -E '^# (pass|fail) ' "$OUT/modules.log" >&2

case "$PROFILE" in
    debug) cargo build --bin vigil --bin vigil-sim --quiet ;;
    release) cargo build --release --bin vigil --bin vigil-sim --quiet ;;
    *) die "E2E_PROFILE must be debug or release (got $PROFILE)" ;;
esac
BIN=$REPO/target/$PROFILE

# Under /tmp: the `postgres` user must be able to enter the directory.
DIR=$(mktemp -d /tmp/vigil-e2e.XXXXXX)
chmod 755 "$DIR"
sim_pid=
cleanup() {
    local rc=$?
    trap - INT TERM EXIT
    if [ -n "$sim_pid" ]; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    scripts/services.sh stop "$DIR" >/dev/null 2>&1 || true
    rm -rf "$DIR"
    exit "$rc"
}
trap cleanup INT TERM EXIT

log "starting private PostgreSQL and Mosquitto in $DIR"
eval "$(scripts/services.sh start "$DIR")"
VIGIL_HTTP_ADDR=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export VIGIL_HTTP_ADDR
"$BIN/vigil" migrate >>"$OUT/vigil.log" 2>&1 || die "vigil migrate failed; see $OUT/vigil.log"

log "vigil-sim: $DEVICES devices x $METRICS metrics at $RATE readings/s"
"$BIN/vigil-sim" --url "$VIGIL_MQTT_URL" --devices "$DEVICES" --metrics "$METRICS" --rate "$RATE" \
    >"$OUT/sim.log" 2>&1 &
sim_pid=$!

log "tests/e2e/$SCRIPT in headless Chromium against http://$VIGIL_HTTP_ADDR"
VIGIL_BIN="$BIN/vigil" E2E_OUT="$OUT" E2E_DEVICES="$DEVICES" CHROMIUM="$CHROMIUM" \
    node "tests/e2e/$SCRIPT"
