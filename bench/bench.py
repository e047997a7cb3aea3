#!/usr/bin/env python3
"""ironsan vs tgtd, side by side on loopback.

Starts ironsan and tgtd with identical file-backed LUNs (fully written, not
sparse), runs the same workloads against each with qemu-img bench and
iscsi-perf, and prints IOPS, MB/s, target CPU seconds per million I/Os and
the ironsan/tgtd ratio for every row, plus a local-file baseline (qemu-img
bench on the file itself: the physical limit of this machine).

Usage: bench/bench.py [--size-mib N] [--seconds S] [--markdown FILE]
Run on demand (bench/run.sh builds and installs what it needs first).
Traffic goes only to 127.0.0.1; every run is bounded in count and time.
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IRONSAN = os.environ.get("IRONSAN_BIN", os.path.join(ROOT, "target", "release", "ironsan"))
IQN_IRONSAN = "iqn.2026-11.org.ironsan.bench:lun"
IQN_TGT = "iqn.2026-11.org.tgt.bench:lun"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# name, tool, block size, depth, write, sequential
WORKLOADS = [
    ("4K read QD1", "qemu", 4096, 1, False),
    ("4K read QD32", "qemu", 4096, 32, False),
    ("4K write QD1", "qemu", 4096, 1, True),
    ("4K write QD32", "qemu", 4096, 32, True),
    ("128K seq read QD8", "qemu", 131072, 8, False),
    ("128K seq write QD8", "qemu", 131072, 8, True),
    ("4K random read QD32 (iscsi-perf)", "perf", 4096, 32, False),
    ("128K random read QD8 (iscsi-perf)", "perf", 131072, 8, False),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def make_lun(path, size_mib):
    # Fully written so reads hit data, not holes, on both targets.
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size_mib):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


class Ironsan:
    name = "ironsan"

    def __init__(self, work, lun, extra="", tag="ironsan"):
        self.port = free_port()
        cfg = os.path.join(work, f"{tag}.toml")
        with open(cfg, "w") as f:
            f.write(f'''data_dir = "{work}/{tag}-data"
portals = ["127.0.0.1:{self.port}"]
[[target]]
iqn = "{IQN_IRONSAN}"
auth = "none"
[[target.lun]]
id = 0
file = "{lun}"
[[target.acl]]
initiator = "*"
{extra}
''')
        self.log = open(os.path.join(work, f"{tag}.log"), "w")
        env = dict(os.environ, IRONSAN_LOG="warn")
        self.proc = subprocess.Popen([IRONSAN, "serve", "--config", cfg], stderr=self.log, env=env)
        wait_port(self.port)
        self.pid = self.proc.pid
        self.url = f"iscsi://127.0.0.1:{self.port}/{IQN_IRONSAN}/0"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class Tgtd:
    name = "tgtd"

    def __init__(self, work, lun):
        self.port = free_port()
        # tgtd accepts control ports up to 32767 only.
        self.ctl = str(20000 + os.getpid() % 12000)
        self.log = open(os.path.join(work, "tgtd.log"), "w")
        self.proc = subprocess.Popen(
            ["tgtd", "-f", "-C", self.ctl, "--iscsi", f"portal=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log)
        try:
            wait_port(self.port)
        except RuntimeError:
            self.proc.kill()
            self.proc.wait()
            raise
        self.pid = self.proc.pid
        adm = ["tgtadm", "-C", self.ctl, "--lld", "iscsi"]
        subprocess.run(adm + ["--mode", "target", "--op", "new", "--tid", "1", "-T", IQN_TGT], check=True)
        subprocess.run(adm + ["--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1", "-b", lun],
                       check=True)
        subprocess.run(adm + ["--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL"], check=True)
        self.url = f"iscsi://127.0.0.1:{self.port}/{IQN_TGT}/1"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_qemu(url, bs, depth, write, size_mib, seconds, cache="none"):
    """qemu-img bench, sequential; the count is sized to run about `seconds`."""
    span = size_mib << 20
    # A short calibration run picks a count that lasts about `seconds`.
    count = 2000 if bs <= 8192 else 400
    for _ in range(2):
        cmd = ["qemu-img", "bench", "-f", "raw", "-t", cache, "-c", str(count), "-d", str(depth),
               "-s", str(bs), "-S", str(bs)]
        if write:
            cmd.append("-w")
        cmd.append(url)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        m = re.search(r"Run completed in ([0-9.]+) seconds", out.stdout)
        if not m:
            raise RuntimeError(f"qemu-img bench failed: {out.stdout}{out.stderr}")
        elapsed = float(m.group(1))
        if elapsed >= seconds * 0.5:
            return count, elapsed
        target = int(count * seconds / max(elapsed, 0.01))
        count = max(count, min(target, span // bs * 4))
    return count, elapsed


def run_perf(url, bs, depth, seconds):
    out = subprocess.run(["iscsi-perf", "-r", "-m", str(depth), "-b", str(bs // 512), "-t", str(seconds), url],
                         capture_output=True, text=True, timeout=seconds + 60)
    m = re.findall(r"iops average ([0-9]+)", out.stdout)
    if not m:
        raise RuntimeError(f"iscsi-perf failed: {out.stdout}{out.stderr}")
    iops = int(m[-1])
    return iops * seconds, float(seconds)


def measure(target, wl, size_mib, seconds):
    name, tool, bs, depth, write = wl
    before = cpu_seconds(target.pid)
    if tool == "qemu":
        ios, elapsed = run_qemu(target.url, bs, depth, write, size_mib, seconds)
    else:
        ios, elapsed = run_perf(target.url, bs, depth, seconds)
    cpu = cpu_seconds(target.pid) - before
    return {"iops": ios / elapsed, "mbs": ios * bs / elapsed / 1e6, "cpu_per_m": cpu / ios * 1e6}


def baseline(lun, wl, size_mib, seconds):
    name, tool, bs, depth, write = wl
    if tool != "qemu":
        return None
    # Through the page cache, as both targets use it.
    ios, elapsed = run_qemu(lun, bs, depth, write, size_mib, seconds, cache="writeback")
    return {"iops": ios / elapsed, "mbs": ios * bs / elapsed / 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--markdown", help="also write the results to this Markdown file")
    args = ap.parse_args()
    for tool in ("qemu-img", "iscsi-perf", "tgtd", "tgtadm"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (bench/run.sh installs it)")
    work = tempfile.mkdtemp(prefix="ironsan-bench.")
    rows = []
    try:
        luns = {}
        for n in ("ironsan", "tgtd", "local"):
            luns[n] = os.path.join(work, f"{n}.img")
            make_lun(luns[n], args.size_mib)
        targets = [Ironsan(work, luns["ironsan"]), Tgtd(work, luns["tgtd"])]
        try:
            for wl in WORKLOADS:
                r = {"name": wl[0]}
                for t in targets:
                    r[t.name] = measure(t, wl, args.size_mib, args.seconds)
                r["local"] = baseline(luns["local"], wl, args.size_mib, args.seconds)
                rows.append(r)
                print_row(r)
        finally:
            for t in targets:
                t.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = render(rows, args)
    print()
    print(table)
    if args.markdown:
        # Keep the sections other benchmarks write (bench/volume.py: "## Volumes").
        kept = ""
        try:
            with open(args.markdown) as f:
                m = re.search(r"^## Volumes\n.*?(?=^# |\Z)", f.read(), flags=re.M | re.S)
                kept = "\n" + m.group(0).rstrip("\n") + "\n" if m else ""
        except FileNotFoundError:
            pass
        with open(args.markdown, "w") as f:
            f.write(table + "\n" + kept)


def print_row(r):
    i, t = r["ironsan"], r["tgtd"]
    print(f"{r['name']:<36} ironsan {i['iops']:>9.0f} IOPS  tgtd {t['iops']:>9.0f} IOPS  "
          f"ratio {i['iops'] / max(t['iops'], 1e-9):.2f}", flush=True)


def machine():
    """One line describing this machine, for benchmark reports."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    return f"{os.cpu_count()} cores ({cpu}), {gib} GiB, kernel {platform.release()}"


def render(rows, args):
    lines = [
        "# Benchmarks: ironsan vs tgtd",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}",
        f"- LUN: {args.size_mib} MiB file, fully written, page cache warm; initiators, targets and load on the same machine",
        f"- reproduce: `bench/run.sh --size-mib {args.size_mib} --seconds {args.seconds}`",
        "- qemu-img bench rows are sequential (its only pattern); iscsi-perf rows are random reads",
        "",
        "| workload | ironsan IOPS | ironsan MB/s | ironsan CPU s/M IO | tgtd IOPS | tgtd MB/s | tgtd CPU s/M IO | IOPS ratio | local file IOPS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        i, t, l = r["ironsan"], r["tgtd"], r["local"]
        local = f"{l['iops']:.0f}" if l else "-"
        lines.append(
            f"| {r['name']} | {i['iops']:.0f} | {i['mbs']:.1f} | {i['cpu_per_m']:.1f} | {t['iops']:.0f} | {t['mbs']:.1f} | "
            f"{t['cpu_per_m']:.1f} | {i['iops'] / max(t['iops'], 1e-9):.2f} | {local} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
