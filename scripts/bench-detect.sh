#!/usr/bin/env bash
# Anomaly detector benchmark: quality on vigil-sim's labelled anomalies (three seeds and a
# clean fleet, 60 series × 7 days at one reading a minute each), on the built-in
# generator, optionally on the Numenta Anomaly Benchmark's real-world series, and cost at
# 10,000 series. The tables are printed and appended to BENCHMARKS.md with date and machine.
#
#   scripts/bench-detect.sh               # vigil-sim, built-in generator, cost
#   NAB_DIR=/path/to/NAB scripts/bench-detect.sh   # also NAB (data/ and labels/)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
echo "==> building (release)" >&2
cargo build --release --bin vigil-sim --bin vigil-bench-detect --quiet
DATA=$REPO/target/bench-detect
rm -rf "$DATA"
SIM=(--devices 10 --metrics 6 --rate 1 --count 604800 --start 2026-11-01T00:00:00Z)
for seed in 1 2 3; do
    target/release/vigil-sim --to-csv "$DATA/s$seed" "${SIM[@]}" --anomaly-rate 0.0005 --seed "$seed"
done
target/release/vigil-sim --to-csv "$DATA/clean" "${SIM[@]}" --anomaly-rate 0 --seed 4
echo "==> scoring vigil-sim's ground truth" >&2
sim=$(target/release/vigil-bench-detect --skip-cost \
    --dir "$DATA/s1" --dir "$DATA/s2" --dir "$DATA/s3" --dir "$DATA/clean")
echo "==> scoring the built-in generator" >&2
builtin=$(target/release/vigil-bench-detect --skip-cost)
nab=""
if [[ -n "${NAB_DIR:-}" ]]; then
    echo "==> scoring NAB at $NAB_DIR" >&2
    nab=$(target/release/vigil-bench-detect --skip-cost --skip-quality --nab "$NAB_DIR")
fi
echo "==> cost at 10,000 series" >&2
cost=$(target/release/vigil-bench-detect --skip-quality)
rm -rf "$DATA"
report=$(printf '%s\n\n%s\n\n%s\n\n%s\n' "$sim" "$builtin" "$nab" "$cost")
echo "$report"
{
    echo
    echo "## Anomaly detection, $(date -u +%Y-%m-%d) — \`scripts/bench-detect.sh\`"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
    echo "vigil-sim: \`--to-csv DIR ${SIM[*]} --anomaly-rate 0.0005 --seed S\` for S = 1, 2, 3, and \`--anomaly-rate 0 --seed 4\` (clean)."
    echo
    echo "$report"
} >> BENCHMARKS.md
