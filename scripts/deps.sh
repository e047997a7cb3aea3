#!/usr/bin/env bash
# Installs the Debian packages the test suite talks to: libiscsi's conformance
# suite and tools, qemu-img/qemu-io with the iSCSI block driver, and
# Chromium (headless, for the dashboard test).
# Debian 12 ships qemu-block-extra only at the bookworm version; a newer
# qemu-utils without the block module is replaced by the matching one.
set -euo pipefail

need=()
command -v iscsi-test-cu >/dev/null || need+=(libiscsi-bin)
qemu_ok() { qemu-img --help 2>/dev/null | grep -qw iscsi; }
qemu_ok || need+=(qemu)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "deps: missing ${need[*]} and not root: install libiscsi-bin qemu-utils qemu-block-extra chromium" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
pkgs=()
for n in "${need[@]}"; do
    if [ "$n" = qemu ]; then
        ver=$(apt-cache policy qemu-block-extra | awk '/Candidate:/ {print $2}')
        if [ -n "$ver" ] && [ "$ver" != "(none)" ]; then
            pkgs+=("qemu-utils=$ver" "qemu-block-extra=$ver")
        else
            pkgs+=(qemu-utils qemu-block-extra)
        fi
    else
        pkgs+=("$n")
    fi
done
$SUDO apt-get install -y -qq --allow-downgrades "${pkgs[@]}" >/dev/null
