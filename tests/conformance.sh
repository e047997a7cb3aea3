#!/usr/bin/env bash
# Runs libiscsi's conformance suite (iscsi-test-cu) against a freshly started
# ironsan on loopback, once per mode:
#   plain   one-way CHAP
#   digest  one-way CHAP, HeaderDigest=CRC32C
#   mutual  mutual CHAP
# Usage: tests/conformance.sh [MODE...] (default: all three)
# Exit status 0 only when no test outside EXCLUDED failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${IRONSAN_BIN:-$root/target/release/ironsan}
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(plain digest mutual)

# Suites that belong to the clustered-hypervisor SCSI work (persistent
# reservations, VAAI, thin provisioning, multipath), not yet offered.
EXCLUDED='^(Prin|Prout|Reserve6|CompareAndWrite|ExtendedCopy|ReceiveCopyResults|Unmap|WriteSame10|WriteSame16|GetLBAStatus|Sanitize|OrWrite|WriteAtomic16|MultipathIO)'

iqn=iqn.2026-11.org.ironsan.test:conformance
user=conformance
secret=conformance-secret-1
muser=ironsan-target
msecret=target-secret-42x
work=$(mktemp -d "${TMPDIR:-/tmp}/ironsan-conf.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
start_target() {
    local mutual=$1
    cat > "$work/ironsan.toml" <<TOML
data_dir = "$work/data"
portals = ["127.0.0.1:$port"]
[[target]]
iqn = "$iqn"
[[target.lun]]
id = 0
file = "$work/lun0.img"
size = "256M"
[[target.acl]]
initiator = "*"
chap_user = "$user"
chap_secret = "$secret"
TOML
    if [ "$mutual" = yes ]; then
        printf 'mutual_user = "%s"\nmutual_secret = "%s"\n' "$muser" "$msecret" >> "$work/ironsan.toml"
    fi
    IRONSAN_LOG=${IRONSAN_LOG:-warn} "$bin" serve --config "$work/ironsan.toml" 2>>"$work/ironsan.log" &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
        sleep 0.1
    done
    echo "ironsan did not start:" >&2
    cat "$work/ironsan.log" >&2
    return 1
}
stop_target() {
    kill -TERM "$pid"
    wait "$pid" || { echo "ironsan exited with status $? on SIGTERM" >&2; return 1; }
    pid=
}

status=0
for mode in "${modes[@]}"; do
    url="iscsi://$user%$secret@127.0.0.1:$port/$iqn/0"
    env=()
    case $mode in
        plain) start_target no ;;
        digest) start_target no; url="$url?header_digest=crc32c" ;;
        mutual) start_target yes; env=(LIBISCSI_CHAP_TARGET_USERNAME=$muser LIBISCSI_CHAP_TARGET_PASSWORD=$msecret) ;;
        *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    log="$root/target/conformance-$mode.log"
    echo "== iscsi-test-cu -d --test=ALL ($mode)"
    env "${env[@]}" timeout 1200 iscsi-test-cu -d --test=ALL "$url" >"$log" 2>&1 || true
    stop_target
    # CUnit prints "Suite: NAME" then "  Test: NAME ...passed|FAILED".
    failed=$(awk '
        /^Suite: / { suite = $2 }
        /Test: .*\.\.\.FAILED/ { t = $0; sub(/.*Test: /, "", t); sub(/ \.\.\.FAILED.*/, "", t); print suite "." t }
    ' "$log")
    unexpected=$(printf '%s\n' "$failed" | grep -v -E "$EXCLUDED" | grep -v '^$' || true)
    excluded=$(printf '%s\n' "$failed" | grep -c -E "$EXCLUDED" || true)
    summary=$(grep -E 'tests +[0-9]+' "$log" | tail -1 || true)
    echo "   $summary"
    echo "   failures in excluded suites: $excluded"
    if [ -n "$unexpected" ]; then
        echo "   UNEXPECTED FAILURES ($mode):"
        printf '     %s\n' $unexpected
        status=1
    fi
    if ! grep -q 'Run Summary' "$log"; then
        echo "   iscsi-test-cu did not finish ($mode); tail of its log:"
        tail -20 "$log" | sed 's/^/     /'
        status=1
    fi
done
exit $status
