#!/usr/bin/env bash
# Builds ironsan and runs the volume benchmark (snapshot/clone creation time,
# volume vs file LUN IOPS, clone space); results go to the "Volumes"
# section of BENCHMARKS.md (the rest of the file is kept).
# Usage: bench/volume.sh [--size-mib N] [--seconds S] [--reps N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
exec python3 bench/volume.py --markdown BENCHMARKS.md "$@"
