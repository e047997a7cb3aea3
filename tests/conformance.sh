#!/usr/bin/env bash
# Runs libiscsi's conformance suite (iscsi-test-cu) against a freshly started
# ironsan on loopback, once per mode:
#   plain   one-way CHAP
#   digest  one-way CHAP, HeaderDigest=CRC32C
#   mutual  mutual CHAP
#   secure  mutual CHAP and a target requiring header digests (libiscsi
#           implements header digests only; data digests are covered by the
#           loopback integration tests)
# Usage: tests/conformance.sh [MODE...] (default: all)
# Exit status 0 only when no test outside EXCLUDED failed.
set -euo pipefail

modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(plain digest mutual secure)

# Suites that belong to the clustered-hypervisor SCSI work (persistent
# reservations, VAAI, thin provisioning, multipath), not yet offered.
EXCLUDED='^(Prin|Prout|Reserve6|CompareAndWrite|ExtendedCopy|ReceiveCopyResults|Unmap|WriteSame10|WriteSame16|GetLBAStatus|Sanitize|OrWrite|WriteAtomic16|MultipathIO)'

work=$(mktemp -d "${TMPDIR:-/tmp}/ironsan-conf.XXXXXX")
source "$(dirname "$0")/lib.sh"

status=0
for mode in "${modes[@]}"; do
    env=()
    case $mode in
        plain) start_target 256M; u=$(url) ;;
        digest) start_target 256M; u="$(url)?header_digest=crc32c" ;;
        mutual) start_target 256M mutual; u=$(url); env=(LIBISCSI_CHAP_TARGET_USERNAME=$muser LIBISCSI_CHAP_TARGET_PASSWORD=$msecret) ;;
        secure) start_target 256M mutual header; u="$(url)?header_digest=crc32c"
                env=(LIBISCSI_CHAP_TARGET_USERNAME=$muser LIBISCSI_CHAP_TARGET_PASSWORD=$msecret) ;;
        *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    log="$root/target/conformance-$mode.log"
    echo "== iscsi-test-cu -d --test=ALL ($mode)"
    env "${env[@]}" timeout 1200 iscsi-test-cu -d --test=ALL "$u" >"$log" 2>&1 || true
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
