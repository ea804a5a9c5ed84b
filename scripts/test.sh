#!/usr/bin/env bash
# Every test of vigil, against real PostgreSQL and Mosquitto instances that the tests start
# themselves (private data directories, free ports). Installs what is missing first.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
command -v cargo >/dev/null || { echo "test.sh: cargo not found: install Rust (rustup) first" >&2; exit 1; }
scripts/setup.sh
echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy" >&2
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test" >&2
cargo test --all-targets
echo "==> end-to-end: the page in headless Chromium" >&2
scripts/e2e.sh
