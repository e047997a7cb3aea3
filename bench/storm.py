#!/usr/bin/env python3
"""Login storm: ironsan vs tgtd, side by side on loopback.

Starts each target (with bench.py's helpers, one at a time) on a fully
written LUN and runs the same `ironsan-load` storm against it: N sessions
from N distinct initiator names at once, 0x0301 answers retried with jittered
backoff, verified 4 KiB I/O per session, logout, and a victim session doing
I/O throughout. Prints logins/s, login latency p50/p99, failures by reason,
0x0301 retries, the victim's command p99 and errors, target CPU seconds, and
the ironsan/tgtd ratios.

Targets:
  ironsan           auth = "none", ACL "*", default [security] settings
  ironsan-tuned     the same with max_pending_logins_per_address raised to
                    the storm size (every session comes from 127.0.0.1, so
                    the default per-address cap of 64 evicts most of them)
  tgtd              -I ALL, no CHAP

Usage: bench/storm.py [--sessions N] [--io K] [--timeout S] [--retry-closed]
                      [--markdown FILE]
Run on demand (bench/storm.sh builds what it needs first). Traffic goes only
to 127.0.0.1; every run is bounded in count and time.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the start helpers: Ironsan, Tgtd, make_lun, cpu_seconds)

LOAD = os.environ.get("IRONSAN_LOAD_BIN", os.path.join(bench.ROOT, "target", "release", "ironsan-load"))


def listen_overflows():
    """Kernel count of connections dropped because an accept queue was full
    (system-wide; None without nstat)."""
    if not shutil.which("nstat"):
        return None
    out = subprocess.run(["nstat", "-az", "TcpExtListenOverflows"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        f = line.split()
        if f and f[0] == "TcpExtListenOverflows":
            return int(f[1])
    return None


def storm(target, iqn, lun, args):
    cmd = [LOAD, "--addr", f"127.0.0.1:{target.port}", "--target", iqn, "--lun", str(lun),
           "--sessions", str(args.sessions), "--io", str(args.io), "--victim",
           "--timeout", f"{args.timeout}s", "--json"]
    if args.retry_closed:
        cmd.append("--retry-closed")
    cpu0 = bench.cpu_seconds(target.pid)
    drops0 = listen_overflows()
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout + 30)
    elapsed = time.monotonic() - t0
    cpu = bench.cpu_seconds(target.pid) - cpu0
    drops1 = listen_overflows()
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    try:
        report = json.loads(line)
    except json.JSONDecodeError:
        raise RuntimeError(f"ironsan-load gave no report (exit {out.returncode}): {out.stdout}{out.stderr}")
    if out.stderr.strip():
        print(out.stderr.strip(), file=sys.stderr)
    report["target_cpu_s"] = cpu
    report["listen_overflows"] = None if drops0 is None or drops1 is None else drops1 - drops0
    report["tool_elapsed_s"] = elapsed
    return report


def p(lat, key):
    return lat[key] if lat else float("nan")


def summary(name, r):
    v = r.get("victim") or {}
    vl = v.get("latency")
    lines = [
        f"{name}: {r['succeeded']}/{r['sessions']} sessions ok, {r['failed']} failed, "
        f"{r['deferrals']} 0x0301 retries ({r['sessions_deferred']} sessions), {r['reconnects']} reconnects",
        f"  logins/s {r['logins_per_sec']:.1f}; login latency p50 {p(r['login_latency'], 'p50_ms'):.1f} ms "
        f"p99 {p(r['login_latency'], 'p99_ms'):.1f} ms max {p(r['login_latency'], 'max_ms'):.1f} ms; "
        f"wall {r['wall_s']:.2f} s; target CPU {r['target_cpu_s']:.2f} s; "
        f"accept-queue overflows {r['listen_overflows']}",
        f"  victim: {v.get('commands', 0)} commands, p99 {p(vl, 'p99_ms'):.1f} ms, max {p(vl, 'max_ms'):.1f} ms, "
        f"error: {v.get('error') or 'none'}",
    ]
    for reason, n in sorted(r["failures"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  failed {n:>5}  {reason}")
    return "\n".join(lines)


def ratio(a, b):
    return a / b if b else float("nan")


def render(results, args):
    lines = [
        "# Login storm: ironsan vs tgtd",
        "",
        f"- date: {time.strftime('%Y-%m-%d')}; {os.cpu_count()} cores; load tool, targets and LUN files on one machine",
        f"- storm: `ironsan-load --sessions {args.sessions} --io {args.io} --victim --timeout {args.timeout}s"
        f"{' --retry-closed' if args.retry_closed else ''}` (all sessions at once, distinct initiator names, "
        "0x0301 retried with jittered backoff)",
        f"- reproduce: `bench/storm.sh --sessions {args.sessions} --io {args.io}`",
        "",
        "| target | ok | failed | 0x0301 retries | logins/s | login p50 ms | login p99 ms | login max ms "
        "| victim cmds | victim p99 ms | victim error | target CPU s | accept-queue overflows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, r in results:
        v = r.get("victim") or {}
        vl = v.get("latency")
        lines.append(
            f"| {name} | {r['succeeded']} | {r['failed']} | {r['deferrals']} | {r['logins_per_sec']:.0f} | "
            f"{p(r['login_latency'], 'p50_ms'):.1f} | {p(r['login_latency'], 'p99_ms'):.1f} | "
            f"{p(r['login_latency'], 'max_ms'):.1f} | {v.get('commands', 0)} | {p(vl, 'p99_ms'):.1f} | "
            f"{v.get('error') or '-'} | {r['target_cpu_s']:.2f} | {r['listen_overflows']} |")
    by = dict(results)
    tgt = by.get("tgtd")
    if tgt:
        lines.append("")
        for name, r in results:
            if name == "tgtd":
                continue
            lines.append(
                f"- {name}/tgtd: logins/s x{ratio(r['logins_per_sec'], tgt['logins_per_sec']):.2f}, "
                f"login p99 x{ratio(p(r['login_latency'], 'p99_ms'), p(tgt['login_latency'], 'p99_ms')):.2f}, "
                f"victim p99 x{ratio(p((r.get('victim') or {}).get('latency'), 'p99_ms'), p((tgt.get('victim') or {}).get('latency'), 'p99_ms')):.3g} "
                "(logins/s: higher is better; p99: lower is better)")
    failures = [(n, r) for n, r in results if r["failures"]]
    if failures:
        lines.append("")
        lines.append("Failures by reason:")
        for name, r in failures:
            for reason, n in sorted(r["failures"].items(), key=lambda kv: -kv[1]):
                lines.append(f"- {name}: {n} x `{reason}`")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--io", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=60, help="bound of each storm, seconds")
    ap.add_argument("--retry-closed", action="store_true",
                    help="also retry connections closed before a login response")
    ap.add_argument("--only", choices=["ironsan", "ironsan-tuned", "tgtd"], action="append",
                    help="run only these targets (repeatable)")
    ap.add_argument("--markdown", help="also write the results to this Markdown file")
    args = ap.parse_args()
    for tool in ("tgtd", "tgtadm"):
        if not shutil.which(tool):
            sys.exit(f"storm: {tool} not found (bench/run.sh installs it)")
    for binary in (bench.IRONSAN, LOAD):
        if not os.access(binary, os.X_OK):
            sys.exit(f"storm: {binary} missing (bench/storm.sh builds it)")
    # Room for the victim's slots at the end of the LUN, with margin.
    size_mib = max(64, (args.sessions * args.io * 4096 >> 20) * 2 + 8)
    work = tempfile.mkdtemp(prefix="ironsan-storm.")
    tuned = f"[security]\nmax_pending_logins_per_address = {max(args.sessions + 16, 64)}\n"
    plan = [
        ("ironsan", lambda lun: bench.Ironsan(work, lun, tag="ironsan"), bench.IQN_IRONSAN, 0),
        ("ironsan-tuned", lambda lun: bench.Ironsan(work, lun, extra=tuned, tag="ironsan-tuned"),
         bench.IQN_IRONSAN, 0),
        ("tgtd", lambda lun: bench.Tgtd(work, lun), bench.IQN_TGT, 1),
    ]
    results = []
    try:
        for name, start, iqn, lun_id in plan:
            if args.only and name not in args.only:
                continue
            lun = os.path.join(work, f"{name}.img")
            bench.make_lun(lun, size_mib)
            try:
                target = start(lun)
            except Exception:
                log = os.path.join(work, f"{name.split('-')[0]}.log" if name == "tgtd" else f"{name}.log")
                if os.path.exists(log):
                    with open(log) as f:
                        print(f"--- {log}\n{f.read()[-4000:]}", file=sys.stderr)
                raise
            try:
                time.sleep(0.5)
                r = storm(target, iqn, lun_id, args)
            finally:
                target.stop()
                os.unlink(lun)
            results.append((name, r))
            print(summary(name, r), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = render(results, args)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
