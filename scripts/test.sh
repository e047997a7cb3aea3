#!/usr/bin/env bash
# The whole test suite: build, unit and integration tests, then real
# initiators (libiscsi's conformance suite, qemu-img) against a live target,
# and the dashboard in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
cargo test --workspace --release --locked
tests/qemu.sh
tests/restart.sh
tests/conformance.sh
tests/dashboard.sh
scripts/fuzz.sh 60
