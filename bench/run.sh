#!/usr/bin/env bash
# Builds ironsan, installs the peers (tgt, libiscsi-bin, qemu's iSCSI driver)
# and runs the side-by-side benchmark; results go to BENCHMARKS.md.
# Usage: bench/run.sh [--size-mib N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if ! command -v tgtd >/dev/null; then
    ${SUDO:-} apt-get install -y -qq tgt >/dev/null
fi
cargo build --release --locked
exec python3 bench/bench.py --markdown BENCHMARKS.md "$@"
