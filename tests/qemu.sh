#!/usr/bin/env bash
# qemu-img (libiscsi block driver) writes a 256 MiB image through iscsi://
# and reads it back; the copy must be bit-identical. qemu-io then checks a
# pattern write and read at an unaligned offset range.
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/ironsan-qemu.XXXXXX")
source "$(dirname "$0")/lib.sh"

head -c $((256 << 20)) /dev/urandom > "$work/src.img"
start_target 256M
echo "== qemu-img convert: 256 MiB through iscsi://"
qemu-img convert -n -f raw -O raw "$work/src.img" "$(url)"
qemu-img convert -f raw -O raw "$(url)" "$work/back.img"
cmp "$work/src.img" "$work/back.img"
echo "   read back bit-identical"
echo "== qemu-io: pattern write/read"
qemu-io -f raw -c "write -P 0x5a 1M 3M" -c "read -P 0x5a 1M 3M" -c "flush" "$(url)" | grep -E 'wrote|read' | sed 's/^/   /'
stop_target
# The data reached the backing file and SIGTERM flushed it.
cmp <(head -c $((1 << 20)) "$work/src.img") <(head -c $((1 << 20)) "$work/lun0.img")
cmp <(tail -c $((252 << 20)) "$work/src.img") <(tail -c $((252 << 20)) "$work/lun0.img")
echo "   backing file consistent after SIGTERM"
