#!/usr/bin/env bash
# The dashboard (/ui) in headless Chromium during a libiscsi workload: the
# daemon serves the API on TCP; iscsi-perf reads through one portal as one
# initiator while qemu-io writes through the other as another. Chromium
# opens /ui#token=... (the token only in the fragment), the dumped DOM must
# show every chart filled (data-points > 0) with non-zero throughput and
# IOPS, and a screenshot is kept as target/ui-dashboard.png. The writer's
# commands are traced meanwhile: the daemon's log must show them.
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/ironsan-ui.XXXXXX")
source "$(dirname "$0")/lib.sh"

browser=
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
    echo "dashboard: no chromium (scripts/deps.sh installs it)" >&2
    exit 1
fi
shot=$root/target/ui-dashboard.png
api_port=$((port + 2))
writer=iqn.2026-11.org.ironsan.test:ui-writer
reader=iqn.2026-11.org.ironsan.test:ui-reader

cat > "$work/ironsan.toml" <<TOML
data_dir = "$work/data"
portals = ["127.0.0.1:$port", "127.0.0.1:$((port + 1))"]
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
[api]
listen = "127.0.0.1:$api_port"
TOML
chmod 600 "$work/ironsan.toml"
IRONSAN_LOG=warn,trace=info "$bin" serve --config "$work/ironsan.toml" 2>>"$work/ironsan.log" &
pid=$!
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$api_port) 2>/dev/null && break
    sleep 0.1
done
token=$(cat "$work/data/api.token")
cli() { "$bin" --api "$work/data/api.sock" "$@"; }
cli trace set "$writer" >/dev/null

echo "== workload: iscsi-perf reads via :$port, qemu-io writes via :$((port + 1))"
timeout 60 iscsi-perf -i "$reader" -t 40 -m 8 -b 128 "$(url)" >"$work/perf.log" 2>&1 &
perf=$!
(
    ops=()
    for i in $(seq 0 31); do ops+=(-c "write -P 0x5a $((i * 4))M 4M"); done
    end=$((SECONDS + 40))
    while [ ! -e "$work/stop" ] && [ $SECONDS -lt $end ]; do
        qemu-io --object "secret,id=sec0,data=$secret" --image-opts \
            "driver=iscsi,transport=tcp,portal=127.0.0.1:$((port + 1)),target=$iqn,lun=0,initiator-name=$writer,user=$user,password-secret=sec0" \
            "${ops[@]}" >/dev/null 2>&1 || true
    done
) &
writes=$!
sleep 2

chrome() {
    local profile
    profile=$(mktemp -d "$work/chrome.XXXXXX")
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --disable-dev-shm-usage --hide-scrollbars \
        --user-data-dir="$profile" --virtual-time-budget=12000 "$@" \
        "http://127.0.0.1:$api_port/ui#token=$token" 2>>"$work/chrome.log"
}
echo "== headless chromium: /ui during the workload"
chrome --dump-dom > "$work/dom.html"
chrome --screenshot="$shot" --window-size=1280,900 >/dev/null
touch "$work/stop"
kill "$perf" 2>/dev/null || true
wait "$perf" 2>/dev/null || true
wait "$writes" 2>/dev/null || true
cli trace clear >/dev/null

fail=0
attr() { # attr ID NAME: the attribute NAME of the element with id ID
    grep -o "<canvas id=\"$1\"[^>]*>" "$work/dom.html" | grep -o " $2=\"[^\"]*\"" | cut -d'"' -f2
}
for id in chart-portal-mbps chart-portal-iops chart-initiator-mbps chart-initiator-iops chart-sessions chart-errors; do
    points=$(attr "$id" data-points)
    max=$(attr "$id" data-max)
    series=$(attr "$id" data-series)
    printf '   %-22s points=%-3s series=%-2s max=%s last=%s\n' "$id" "$points" "$series" "$max" "$(attr "$id" data-last)"
    if [ -z "$points" ] || [ "$points" -le 0 ]; then
        echo "dashboard: $id has no points" >&2
        fail=1
    fi
    case $id in chart-errors) ;; *)
        if ! awk -v m="${max:-0}" 'BEGIN { exit !(m > 0) }'; then
            echo "dashboard: $id stayed at zero during the workload" >&2
            fail=1
        fi ;;
    esac
done
for who in "$reader" "$writer"; do
    grep -q "<td>$who</td>" "$work/dom.html" || { echo "dashboard: $who not in the initiator table" >&2; fail=1; }
done
grep -q 'id="status" data-state="ok"' "$work/dom.html" || {
    echo "dashboard: status not ok: $(grep -o '<span id="status"[^<]*' "$work/dom.html")" >&2
    fail=1
}
if grep -q "token=" "$work/dom.html"; then echo "dashboard: the token leaked into the DOM" >&2; fail=1; fi
size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
if [ "$size" -lt 20000 ]; then echo "dashboard: screenshot missing or blank ($size bytes)" >&2; fail=1; fi
echo "   screenshot: $shot ($size bytes)"
sed 's/\x1b\[[0-9;]*m//g' "$work/ironsan.log" > "$work/plain.log"
traced=$(grep -c 'trace: command.*cdb=2a' "$work/plain.log" || true)
echo "   traced WRITE commands of $writer: $traced"
if [ "$traced" -lt 1 ]; then echo "dashboard: no traced command in the log" >&2; fail=1; fi
if grep 'trace: command' "$work/plain.log" | grep -q "$reader"; then
    echo "dashboard: commands of an untraced initiator were traced" >&2
    fail=1
fi
if [ $fail -ne 0 ]; then
    cp "$work/dom.html" "$root/target/ui-dashboard.dom.html" 2>/dev/null || true
    tail -20 "$work/ironsan.log" "$work/chrome.log" "$work/perf.log" >&2 || true
    exit 1
fi
stop_target
echo "   dashboard OK"
