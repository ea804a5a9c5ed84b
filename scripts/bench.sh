#!/usr/bin/env bash
# Ingest benchmark: private PostgreSQL and Mosquitto, release build, one run of
# vigil-bench; the table is printed and appended to BENCHMARKS.md with date and machine.
#
#   scripts/bench.sh [vigil-bench options, e.g. --messages 300000 --packed 5000]
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
table=$(target/release/vigil-bench "$@")
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
