#!/usr/bin/env bash
# vigil's main job on one machine: private PostgreSQL and Mosquitto, vigil itself, and a
# small simulated fleet publishing to it. Ctrl-C stops everything (data stays in the
# demo directory for the next run).
#
#   scripts/demo.sh                 # 20 devices x 3 metrics at 60 readings/s, rare anomalies
#   DEVICES=100 RATE=500 scripts/demo.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
DIR=${VIGIL_DEMO_DIR:-$REPO/target/demo}
ADDR=${VIGIL_HTTP_ADDR:-127.0.0.1:8080}
DEVICES=${DEVICES:-20}
METRICS=${METRICS:-3}
RATE=${RATE:-60}
# Chance per reading that the simulator starts an anomaly (labelled in target/demo/labels.jsonl).
ANOMALY_RATE=${ANOMALY_RATE:-0.0005}

log() { printf '==> %s\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "demo.sh: cargo not found: install Rust (rustup) first" >&2; exit 1; }
scripts/setup.sh
log "building vigil (release)"
cargo build --release --bins --quiet

pids=()
cleanup() {
    trap - INT TERM EXIT
    log "stopping"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    scripts/services.sh stop "$DIR" || true
}
trap cleanup INT TERM EXIT
log "starting private PostgreSQL and Mosquitto in $DIR"
eval "$(scripts/services.sh start "$DIR")"

export VIGIL_HTTP_ADDR=$ADDR
# The demo accepts HTTP ingest with this token: curl -H 'Authorization: Bearer demo' ...
export VIGIL_HTTP__INGEST_TOKEN=${VIGIL_HTTP__INGEST_TOKEN:-demo}
target/release/vigil migrate
target/release/vigil serve &
pids+=($!)
log "waiting for vigil to be ready"
for _ in $(seq 1 100); do
    if curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
curl -fsS "http://$ADDR/readyz" >/dev/null || { echo "demo.sh: vigil did not become ready" >&2; exit 1; }

cat >&2 <<MSG

  vigil is running with a simulated fleet of $DEVICES devices x $METRICS metrics at $RATE readings/s.

    live page:  http://$ADDR/
    API:        http://$ADDR/api/openapi.json   (devices, history, export, anomalies, stream)
    metrics:    http://$ADDR/metrics
    readiness:  http://$ADDR/readyz
    database:   psql "$VIGIL_DATABASE_URL" -c 'SELECT * FROM readings ORDER BY ts DESC LIMIT 10'
    broker:     $VIGIL_MQTT_URL   (mosquitto_pub -L "$VIGIL_MQTT_URL/sensors/my-device/temp" -m 21.5)

  Ctrl-C stops everything.

MSG
target/release/vigil-sim --url "$VIGIL_MQTT_URL" --devices "$DEVICES" --metrics "$METRICS" --rate "$RATE" \
    --anomaly-rate "$ANOMALY_RATE" --labels "$DIR/labels.jsonl" &
pids+=($!)
wait -n "${pids[@]}"
