#!/usr/bin/env bash
# History benchmark: a private PostgreSQL, release build, one run of vigil-bench-history
# (31.5 M readings loaded with COPY, rollups built, latency measured); the table is
# printed and appended to BENCHMARKS.md with date and machine.
#
#   scripts/bench-history.sh [vigil-bench-history options, e.g. --days 30 --queries 100]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
scripts/setup.sh
DIR=$REPO/target/bench-history-services
rm -rf "$DIR"
eval "$(scripts/services.sh start "$DIR")"
trap 'scripts/services.sh stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
echo "==> building (release)" >&2
cargo build --release --bin vigil-bench-history --quiet
table=$(target/release/vigil-bench-history "$@")
echo "$table"
{
    echo
    echo "## History latency, $(date -u +%Y-%m-%d) — \`scripts/bench-history.sh $*\`"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
        "PostgreSQL $(psql --version | awk '{print $3}') with its default settings, everything on loopback." \
        "vigil answers through HTTP (in-process server, JSON included); the baseline runs the same" \
        "min/max-per-bucket aggregation on the raw table."
    echo
    echo "$table"
} >> BENCHMARKS.md
