#!/usr/bin/env bash
# WebSocket fan-out benchmark: private PostgreSQL and Mosquitto, release build, one run
# of vigil-bench-fanout; the table is printed and appended to BENCHMARKS.md with date
# and machine.
#
#   scripts/bench-fanout.sh [vigil-bench-fanout options, e.g. --clients 1000 --idle-clients 10000]
#
# Ten thousand WebSocket clients need as many file descriptors in this benchmark and
# in vigil: the open-files limit is raised to 65536 here (both inherit it).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "==> open-files limit: $(ulimit -n)" >&2
scripts/setup.sh
DIR=$REPO/target/bench-fanout-services
rm -rf "$DIR"
eval "$(scripts/services.sh start "$DIR")"
trap 'scripts/services.sh stop "$DIR" >/dev/null 2>&1 || true' EXIT
echo "==> building (release)" >&2
cargo build --release --bin vigil --bin vigil-bench-fanout --quiet
table=$(target/release/vigil-bench-fanout "$@")
echo "$table"
{
    echo
    echo "## $(date -u +%Y-%m-%d) — WebSocket fan-out: \`scripts/bench-fanout.sh $*\`"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
        "PostgreSQL $(psql --version | awk '{print $3}'), $( (/usr/sbin/mosquitto -h 2>/dev/null || true) | head -n1), everything on loopback;" \
        "open-files limit $(ulimit -n)."
    echo
    echo "$table"
} >> BENCHMARKS.md
