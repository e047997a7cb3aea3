#!/usr/bin/env python3
"""Volume engine benchmark: one ironsan daemon serving a raw file LUN and
volume LUNs of its pool side by side.

(a) snapshot and clone creation time (the API call over the Unix socket,
    median of --reps) for a 1 GiB and a 64 GiB volume holding the same
    data, and their ratio (O(1): about 1);
(b) 4K random read IOPS (iscsi-perf -r) and 4K write IOPS (qemu-img bench
    -w with a large odd step, so consecutive writes land far apart) through
    iSCSI on the volume LUN vs the file LUN, and their ratio (goal >= 0.8);
(c) the pool space a clone of the 1 GiB volume costs until written: the
    allocated blocks of the pool's files (data, wal, ckpt.*) and the
    pool's and the clone's `used` accounting, before and after the clone,
    and after writing 4 MiB to it.

Usage: bench/volume.py [--size-mib N] [--seconds S] [--reps N] [--markdown FILE]
Run on demand (bench/volume.sh builds the release binary first), not in CI.
Traffic goes only to 127.0.0.1; every run is bounded in count and time.
With --markdown the "## Volumes" section of FILE is replaced (or appended);
the rest of the file is kept.
"""

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as harness  # noqa: E402  (free_port, run_perf, machine)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IRONSAN = os.environ.get("IRONSAN_BIN", os.path.join(ROOT, "target", "release", "ironsan"))
IQN = "iqn.2026-11.org.ironsan.bench:vol"
BIG_GIB = 64
# Step of the write benchmark, in 4 KiB blocks: odd, so it visits every
# block of a power-of-two sized LUN before repeating, and far from 1.
WRITE_STEP_BLOCKS = 104729


def wait_for(pred, what, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Daemon:
    def __init__(self, work, size_mib):
        self.work = work
        self.port = harness.free_port()
        self.data = os.path.join(work, "data")
        self.file_lun = os.path.join(work, "file.img")
        cfg = os.path.join(work, "ironsan.toml")
        with open(cfg, "w") as f:
            f.write(f'''data_dir = "{self.data}"
portals = ["127.0.0.1:{self.port}"]
[[target]]
iqn = "{IQN}"
auth = "none"
[[target.lun]]
id = 0
file = "{self.file_lun}"
[[target.lun]]
id = 1
volume = "small"
size = "{size_mib}M"
[[target.lun]]
id = 2
volume = "big"
size = "{BIG_GIB}G"
[[target.acl]]
initiator = "*"
''')
        self.log = open(os.path.join(work, "ironsan.log"), "w")
        env = dict(os.environ, IRONSAN_LOG="warn")
        self.proc = subprocess.Popen([IRONSAN, "serve", "--config", cfg], stderr=self.log, env=env)
        self.sock = os.path.join(self.data, "api.sock")

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"ironsan exited; see {self.log.name}")
            return self.api("GET", "/v1/state") is not None
        wait_for(up, "the API")

    def url(self, lun):
        return f"iscsi://127.0.0.1:{self.port}/{IQN}/{lun}"

    def api(self, method, path, body=None, timeout=600):
        c = UnixHTTP(self.sock, timeout)
        try:
            payload = json.dumps(body) if body is not None else None
            c.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {data.decode(errors='replace')}")
        return json.loads(data) if data else {}

    def timed(self, method, path, body=None):
        t0 = time.perf_counter()
        self.api(method, path, body)
        return time.perf_counter() - t0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def make_file(path, size_mib):
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(size_mib):
            # Different content per MiB (a volume stores what it is given).
            f.write(chunk[i % 4096:] + chunk[:i % 4096])
        f.flush()
        os.fsync(f.fileno())


def fill(url, src):
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", "-t", "none", src, url],
                   check=True, timeout=1800)


def run_perf(url, depth, seconds):
    """4 KiB random-read IOPS (iscsi-perf), as in bench.py."""
    ios, elapsed = harness.run_perf(url, 4096, depth, seconds)
    return ios / elapsed


def run_qemu_write(url, depth, seconds):
    """qemu-img bench -w of 4 KiB, `WRITE_STEP_BLOCKS` apart (wrapping at
    the end of the LUN); the count is calibrated to last about `seconds`."""
    count = 4000
    for _ in range(3):
        cmd = ["qemu-img", "bench", "-f", "raw", "-t", "none", "-w", "--pattern=165", "-c", str(count),
               "-d", str(depth), "-s", "4096", "-S", str(WRITE_STEP_BLOCKS * 4096), url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        m = re.search(r"Run completed in ([0-9.]+) seconds", out.stdout)
        if not m:
            raise RuntimeError(f"qemu-img bench failed: {out.stdout}{out.stderr}")
        elapsed = float(m.group(1))
        if elapsed >= seconds * 0.6:
            return count / elapsed
        count = max(count, int(count * seconds / max(elapsed, 0.01)))
    return count / elapsed


def pool_files(pool):
    out = {}
    for name in ("data", "wal", "ckpt.0", "ckpt.1"):
        st = os.stat(os.path.join(pool, name))
        out[name] = st.st_blocks * 512
    return out


def space(d, clone=None):
    st = d.api("GET", "/v1/pool")
    files = pool_files(os.path.join(d.data, "pool"))
    vols = {v["name"]: v for v in d.api("GET", "/v1/volumes")}
    return {
        "files": sum(files.values()),
        "files_detail": files,
        "allocated": st["allocated_bytes"],
        "log": st["log_bytes"],
        "small_used": vols["small"]["used_bytes"],
        "clone_used": vols[clone]["used_bytes"] if clone in vols else None,
    }


def kib(b):
    return f"{b / 1024:.0f} KiB" if abs(b) < (1 << 20) else f"{b / (1 << 20):.1f} MiB"


def ms(s):
    return f"{s * 1000:.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="the small volume and the file LUN")
    ap.add_argument("--seconds", type=int, default=5, help="per IOPS measurement")
    ap.add_argument("--reps", type=int, default=20, help="snapshot/clone creations per volume")
    ap.add_argument("--dir", default=None, help="work directory (default: a new one in $TMPDIR)")
    ap.add_argument("--markdown", help="replace the Volumes section of this Markdown file")
    args = ap.parse_args()
    for tool in ("qemu-img", "iscsi-perf"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (scripts/deps.sh installs it)")
    if not os.access(IRONSAN, os.X_OK):
        sys.exit(f"bench: {IRONSAN} not found (cargo build --release)")
    load_before = os.getloadavg()
    work = tempfile.mkdtemp(prefix="ironsan-volbench.", dir=args.dir)
    res = {}
    try:
        print(f"writing a {args.size_mib} MiB file LUN", flush=True)
        make_file(os.path.join(work, "file.img"), args.size_mib)
        d = Daemon(work, args.size_mib)
        try:
            res = bench(d, args)
        finally:
            d.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["load_before"] = load_before
    text = render(res, args)
    print()
    print(text)
    if args.markdown:
        update_markdown(args.markdown, text)


def bench(d, args):
    res = {}
    print(f"copying it to the {args.size_mib} MiB and the {BIG_GIB} GiB volume", flush=True)
    fill(d.url(1), d.file_lun)
    fill(d.url(2), d.file_lun)

    # (b) IOPS, file LUN (0) vs volume LUN (1), alternating, best of two.
    rows = []
    for name, kind, depth in (("4K random read QD32 (iscsi-perf -r)", "read", 32),
                              ("4K random read QD1 (iscsi-perf -r)", "read", 1),
                              ("4K scattered write QD32 (qemu-img bench -w)", "write", 32),
                              ("4K scattered write QD1 (qemu-img bench -w)", "write", 1)):
        got = {0: [], 1: []}
        for lun in (0, 1):  # warm-up
            if kind == "read":
                run_perf(d.url(lun), depth, 1)
        for _ in range(2):
            for lun in (0, 1):
                if kind == "read":
                    got[lun].append(run_perf(d.url(lun), depth, args.seconds))
                else:
                    got[lun].append(run_qemu_write(d.url(lun), depth, args.seconds))
        f, v = max(got[0]), max(got[1])
        rows.append((name, f, v))
        print(f"{name:<46} file {f:>9.0f} IOPS  volume {v:>9.0f} IOPS  ratio {v / max(f, 1e-9):.2f}", flush=True)
    res["iops"] = rows

    # (c) space of a clone of the 1 GiB volume, until written and after.
    d.api("POST", "/v1/pool/scrub?volume=small")  # nothing pending, page cache warm
    before = space(d)
    d.api("POST", "/v1/volumes/small/snapshots", {"name": "base"})
    d.api("POST", "/v1/snapshots/small@base/clone", {"name": "small-clone"})
    after = space(d, "small-clone")
    d.api("PUT", f"/v1/targets/{IQN}/luns/3", {"volume": "small-clone"})
    subprocess.run(["qemu-img", "bench", "-f", "raw", "-t", "none", "-w", "--pattern=90", "-c", "1024",
                    "-d", "8", "-s", "4096", d.url(3)], check=True, capture_output=True, timeout=300)
    d.api("POST", "/v1/volumes", {"name": "flush-marker", "size": "1M"})  # a commit
    written = space(d, "small-clone")
    res["space"] = (before, after, written)
    print(f"clone of {args.size_mib} MiB: pool files +{kib(after['files'] - before['files'])}, "
          f"allocated +{kib(after['allocated'] - before['allocated'])}, clone used {after['clone_used']}; "
          f"after writing 4 MiB: clone used {kib(written['clone_used'])}", flush=True)

    # (a) snapshot and clone creation, 1 GiB vs 64 GiB with the same data.
    times = {}
    for vol in ("small", "big"):
        snaps, clones = [], []
        for i in range(args.reps):
            snaps.append(d.timed("POST", f"/v1/volumes/{vol}/snapshots", {"name": f"t{i}"}))
            clones.append(d.timed("POST", f"/v1/snapshots/{vol}@t{i}/clone", {"name": f"{vol}-c{i}"}))
        times[vol] = (statistics.median(snaps), statistics.median(clones))
        print(f"{vol}: snapshot {ms(times[vol][0])}, clone {ms(times[vol][1])} (median of {args.reps})",
              flush=True)
    res["times"] = times
    st = d.api("GET", "/v1/pool")
    res["touched"] = st.get("metadata_entries_touched")
    return res


def render(res, args):
    small, big = res["times"]["small"], res["times"]["big"]
    before, after, written = res["space"]
    la = res["load_before"]
    size = f"{args.size_mib / 1024:g} GiB" if args.size_mib >= 1024 else f"{args.size_mib} MiB"
    lines = [
        "## Volumes",
        "",
        f"- date: {datetime.date.today().isoformat()}; machine: {harness.machine()}; load average before the run "
        f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}",
        f"- reproduce: `bench/volume.sh --size-mib {args.size_mib} --seconds {args.seconds} --reps {args.reps}`",
        "- one daemon (release build) serving a fully written raw file LUN and volume LUNs of its pool, "
        "both on the same filesystem, page cache warm; initiator tools on the same machine",
        "",
        f"Snapshot and clone creation (the API call over the Unix socket, median of {args.reps}; "
        f"both volumes hold the same {size} of data; includes the commit's two fsyncs):",
        "",
        f"| operation | {size} volume | {BIG_GIB} GiB volume | ratio |",
        "|---|---:|---:|---:|",
        f"| snapshot create | {ms(small[0])} | {ms(big[0])} | {big[0] / small[0]:.2f} |",
        f"| clone create | {ms(small[1])} | {ms(big[1])} | {big[1] / small[1]:.2f} |",
        "",
        f"Map entries copied by all those snapshots and clones: {res['touched']}.",
        "",
        f"4K I/O through iSCSI, volume LUN vs raw file LUN on the same daemon (best of 2 runs of "
        f"{args.seconds} s each; writes are qemu-img bench with a step of {WRITE_STEP_BLOCKS} blocks, "
        "so consecutive writes land far apart):",
        "",
        "| workload | file LUN IOPS | volume LUN IOPS | volume / file |",
        "|---|---:|---:|---:|",
    ]
    for name, f, v in res["iops"]:
        lines.append(f"| {name} | {f:.0f} | {v:.0f} | {v / max(f, 1e-9):.2f} |")
    lines += [
        "",
        "Reads pay a map lookup and a CRC32C per 4 KiB on top of the file LUN's pread. Writes are "
        "redirected to newly allocated blocks, which the allocator hands out in order, so scattered "
        "writes become sequential writes to the pool's data file (the file LUN dirties scattered pages "
        "of its file instead).",
        "",
        f"Space of a clone of the {size} volume (allocated blocks of the pool's files data, wal, ckpt.0, "
        "ckpt.1; the pool's `allocated_bytes`; the clone's `used_bytes`):",
        "",
        "| | before | after snapshot + clone | after writing 4 MiB to the clone |",
        "|---|---:|---:|---:|",
        f"| pool files on disk | {kib(before['files'])} | +{kib(after['files'] - before['files'])} | "
        f"+{kib(written['files'] - before['files'])} |",
        f"| log (apparent bytes) | {before['log']} B | +{after['log'] - before['log']} B | "
        f"+{written['log'] - before['log']} B |",
        f"| pool allocated_bytes | {kib(before['allocated'])} | +{kib(after['allocated'] - before['allocated'])} | "
        f"+{kib(written['allocated'] - before['allocated'])} |",
        f"| clone used_bytes | - | {kib(after['clone_used'])} | {kib(written['clone_used'])} |",
        "",
        "(The pool reuses blocks freed by earlier overwrites before growing the data file, so the "
        "files may grow by less than what is written.)",
    ]
    return "\n".join(lines)


def update_markdown(path, section):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    if not text.strip():
        text = "# Benchmarks\n"
    m = re.search(r"^## Volumes\n.*?(?=^#{1,2} |\Z)", text, flags=re.M | re.S)
    if m:
        text = text[:m.start()] + section + "\n\n" + text[m.end():].lstrip("\n")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
