#!/usr/bin/env bash
# Builds ironsan and ironsan-load, installs tgt if needed, and runs the
# login-storm comparison (bench/storm.py); results go to BENCHMARKS-storm.md.
# Usage: bench/storm.sh [--sessions N] [--io K] [--timeout S] [--retry-closed]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v tgtd >/dev/null; then
    ${SUDO:-} apt-get install -y -qq tgt >/dev/null
fi
cargo build --release --locked -p ironsan -p ironsan-load
exec python3 bench/storm.py --markdown BENCHMARKS-storm.md "$@"
