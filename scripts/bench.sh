#!/usr/bin/env bash
# Ingest benchmark: private PostgreSQL and Mosquitto, release build, then
#  - vigil-sim's own publishing ceiling (QoS 0 and QoS 1, one process, 1,000 devices × 5),
#  - vigil-bench: baselines, max sustained QoS 1 rate, latency at half of it, resources,
#    loss and duplicates, packed payloads, a drained backlog.
# The table is printed and appended to BENCHMARKS.md with date and machine.
#
#   scripts/bench.sh [vigil-bench options, e.g. --step 5s --max-steps 8 --backlog 0]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
scripts/setup.sh
DIR=$REPO/target/bench-services
rm -rf "$DIR"
eval "$(scripts/services.sh start "$DIR")"
trap 'scripts/services.sh stop "$DIR" >/dev/null 2>&1 || true' EXIT
echo "==> building (release)" >&2
cargo build --release --bins --quiet

# vigil-sim asked for far more than it can do: the achieved rate is its ceiling.
sim_rate() {
    local qos=$1 summary=$DIR/sim-qos$1.json
    echo "==> vigil-sim ceiling, QoS $qos" >&2
    target/release/vigil-sim --url "$VIGIL_MQTT_URL" --devices 1000 --metrics 5 \
        --rate 400000 --connections 4 --duration 10s --qos "$qos" --prefix "simbench$qos" \
        --summary "$summary" >&2
    sed -n 's/.*"achieved_rate": *\([0-9.]*\).*/\1/p' "$summary" | cut -d. -f1
}
q0=$(sim_rate 0)
q1=$(sim_rate 1)
echo "==> vigil-bench" >&2
table=$(target/release/vigil-bench "$@")
table="$table
| vigil-sim publishing ceiling, one process, 4 connections, QoS 0 | $q0 msg/s | target ≥ 50000 | | | |
| vigil-sim publishing ceiling, one process, 4 connections, QoS 1 (broker acks) | $q1 msg/s | target ≥ 25000 | | | |"
echo "$table"
{
    echo
    echo "## $(date -u +%Y-%m-%d) — \`scripts/bench.sh $*\`"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
        "PostgreSQL $(psql --version | awk '{print $3}'), $( (/usr/sbin/mosquitto -h 2>/dev/null || true) | head -n1), everything on loopback."
    echo
    echo "$table"
} >> BENCHMARKS.md
