#!/usr/bin/env bash
# Restarts that initiators never see as errors.
#  1. A verified write/read workload (qemu-io over libiscsi) runs through 10
#     `ironsan restart` hand-overs: zero I/O errors, zero pattern mismatches.
#  2. The same through 5 `kill -9` + start cycles (what systemd's
#     Restart=always does): the initiator reconnects and retries; every
#     write it saw completed (and flushed) reads back.
#  3. SIGTERM under load returns within the documented bound (15 s).
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/ironsan-restart.XXXXXX")
source "$(dirname "$0")/lib.sh"

# workload N: N verified 16 KiB write/read pairs at distinct offsets.
workload() {
    local n=$1 cmds=() i p o
    for ((i = 0; i < n; i++)); do
        p=$(( (i % 250) + 1 )); o=$(( (i % 8000) * 16384 ))
        cmds+=(-c "write -P $p $o 16k" -c "read -P $p $o 16k")
        (( i % 500 == 499 )) && cmds+=(-c "flush")
    done
    qemu-io -f raw "${cmds[@]}" "$(url)"
}

check_output() {
    local out=$1 expected=$2 reads
    reads=$(grep -c '^read ' "$out" || true)
    if grep -qiE 'error|fail|mismatch' "$out" || [ "$reads" -ne "$expected" ]; then
        echo "   FAILED: $reads of $expected verified reads; errors:" >&2
        grep -iE 'error|fail|mismatch' "$out" | head -5 >&2
        return 1
    fi
    echo "   $reads verified reads, no errors"
}

echo "== 10 x ironsan restart under a verified workload"
start_target 256M
workload 12000 > "$work/qio1.out" 2>&1 &
qio=$!
for i in $(seq 10); do
    sleep 1
    "$bin" restart --config "$work/ironsan.toml" >/dev/null
done
wait $qio
check_output "$work/qio1.out" 12000
stop_target

echo "== 5 x kill -9 and start under a verified workload"
start_target 256M
workload 8000 > "$work/qio2.out" 2>&1 &
qio=$!
for i in $(seq 5); do
    sleep 1.5
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    rm -f "$work/data/ironsan.pid"
    IRONSAN_LOG=${IRONSAN_LOG:-warn} "$bin" serve --config "$work/ironsan.toml" 2>>"$work/ironsan.log" &
    pid=$!
done
wait $qio
check_output "$work/qio2.out" 8000

echo "== SIGTERM under load"
workload 100000 > /dev/null 2>&1 &
qio=$!
sleep 1
start=$(date +%s)
stop_target
echo "   stopped in $(( $(date +%s) - start )) s"
kill $qio 2>/dev/null || true
wait $qio 2>/dev/null || true
