# Shared by the shell tests: start and stop an ironsan on loopback with one
# file-backed LUN and CHAP. Source it; set `work` to a scratch directory first.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${IRONSAN_BIN:-$root/target/release/ironsan}
iqn=iqn.2026-11.org.ironsan.test:lun
user=tester
secret=tester-secret-01
muser=ironsan-target
msecret=target-secret-42x
port=$((20000 + RANDOM % 20000))
pid=

# start_target SIZE [mutual|no] [optional|header|required]
start_target() {
    local size=$1 mutual=${2:-no} digests=${3:-optional}
    cat > "$work/ironsan.toml" <<TOML
data_dir = "$work/data"
portals = ["127.0.0.1:$port", "127.0.0.1:$((port + 1))"]
[[target]]
iqn = "$iqn"
digests = "$digests"
[[target.lun]]
id = 0
$(if [ "${LUN_BACKING:-file}" = volume ]; then echo "volume = \"lun0\""; else echo "file = \"$work/lun0.img\""; fi)
size = "$size"
[[target.acl]]
initiator = "*"
chap_user = "$user"
chap_secret = "$secret"
TOML
    if [ "$mutual" = mutual ]; then
        printf 'mutual_user = "%s"\nmutual_secret = "%s"\n' "$muser" "$msecret" >> "$work/ironsan.toml"
    fi
    rm -rf "$work/lun0.img" "$work/data/ironsan.pid" "$work/data/pool"
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

# stop_target: SIGTERM, which must end the daemon cleanly. After restarts
# the daemon is a different process: the pid file names it.
stop_target() {
    local daemon=$pid rc=0
    [ -f "$work/data/ironsan.pid" ] && daemon=$(cat "$work/data/ironsan.pid")
    kill -TERM "$daemon"
    if [ "$daemon" = "$pid" ]; then
        wait "$pid" || rc=$?
    else
        for _ in $(seq 300); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$daemon" 2>/dev/null && rc=1
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    pid=
    if [ $rc -ne 0 ]; then
        echo "ironsan exited with status $rc on SIGTERM" >&2
        return 1
    fi
}

url() { echo "iscsi://$user%$secret@127.0.0.1:$port/$iqn/0"; }
# The same LUN through the second portal (multipath).
url2() { echo "iscsi://$user%$secret@127.0.0.1:$((port + 1))/$iqn/0"; }

cleanup() {
    if [ -f "$work/data/ironsan.pid" ]; then kill -9 "$(cat "$work/data/ironsan.pid")" 2>/dev/null || true; fi
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
