"""Verdict stability: run the whole suite K times and count, per scenario, how often each verdict
came out. A certification pipeline must get the same verdicts on a busy build agent as in the
vendor's lab; this measures whether it does.

    python benchmarks/verdict_stability.py --runs 20                 # one process
    python benchmarks/verdict_stability.py --runs 20 --workers 2     # pytest-xdist, 2 workers
    python benchmarks/verdict_stability.py --runs 10 --workers 2 --burn 1
                                        # beside a CPU-burning neighbour it starts and stops
    python benchmarks/verdict_stability.py --runs 5 --burn 1 --defect no-rekey-on-leave --req R6
                                        # a defect must still fail under the same load
    python benchmarks/verdict_stability.py --runs 3 --spray
                                        # beside a neighbour that sends a stray datagram to
                                        # every ephemeral UDP port on loopback once a second

The spray stands for what a shared machine does to a participant's freshly bound port: another
process's mixer or client still sending to it (forged SRTCP, plain RTCP and SRTP in turn, none
under a key of the run). A verdict that moves under it depends on the machine, not the target.

Every Scenario Outline example is counted apart ("... with AEAD_AES_128_GCM", "... of 50
participants"). A *flip* is a scenario that did not give the same verdict in every run. Each
run is a real `confsec run` in a child process; its reports go to a temporary directory.
Prints a table and, for every verdict other than pass and not applicable, its reasons.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from confsec.report.verdicts import example_title

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = ("pass", "fail", "inconclusive", "error", "not applicable")
BURN_LIMIT_S = 3 * 3600
"""A burner ends by itself after this long even if the benchmark is killed."""

BURNER = f"""
import signal, time
signal.alarm({BURN_LIMIT_S})
x = 0
while True:
    x = (x * 31 + 7) % 1000003
"""


SPRAYER = f"""
import os, signal, socket, time
from confsec.media import rtcp
from confsec.media.defect_srtp import protect_srtcp
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_master_key, new_sender
signal.alarm({BURN_LIMIT_S})
suite = "AES_CM_128_HMAC_SHA1_80"
report = rtcp.compound(rtcp.receiver_report(7), rtcp.sdes_cname(7, "stray@elsewhere"))
tx = new_sender(KeyStreamLedger(), StreamId("s", "t", "audio", "send"), suite,
                *new_master_key(suite))
kinds = [protect_srtcp(suite, os.urandom(16), os.urandom(14), report, 5), report,
         tx.protect(build_rtp(0, 1, 160, 0x5EED, b"\\xff" * 160))]
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    lo, hi = (int(x) for x in f.read().split())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.setblocking(False)
k = 0
while True:
    t0 = time.monotonic()
    for port in range(lo, hi + 1):
        try:
            s.sendto(kinds[k % 3], ("127.0.0.1", port))
        except OSError:
            pass
    k += 1
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
"""


def example_name(scenario: dict) -> str:
    """The outline's title with its example's values: '... with <suite>' -> '... with X', and a
    title without a placeholder gets the values after it: '... goes on (a request line ...)'.
    Each example is counted apart (verdicts.json's `title` where the run wrote one)."""
    return scenario.get("title") or example_title(scenario["name"], scenario.get("params") or {})


def start_burners(n: int, spray: bool = False) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for code in [BURNER] * n + ([SPRAYER] if spray else [])
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def read_run(out: Path) -> list[dict]:
    """The scenarios of one run's verdicts.json (empty when the run wrote none)."""
    path = out / "reports" / "verdicts.json"
    scenarios: list[dict] = []
    if path.is_file():
        doc = json.loads(path.read_text())
        for req in doc.get("requirements", []):
            for s in req.get("scenarios", []):
                scenarios.append({**s, "requirement": req["id"]})
    return scenarios


def one_run(args: argparse.Namespace, workdir: Path, k: int) -> tuple[int, float, list[dict]]:
    out = workdir / f"run-{k:02d}"
    cmd = [sys.executable, "-m", "confsec.cli", "run", "--reports", str(out / "reports")]
    cmd += ["--evidence", str(out / "evidence")]
    if args.workers:
        cmd += ["-n", str(args.workers)]
    for d in args.defect:
        cmd += ["--defect", d]
    for r in args.req:
        cmd += ["--req", r]
    start = time.monotonic()
    with (out.parent / f"run-{k:02d}.log").open("w") as log:
        out.mkdir(parents=True, exist_ok=True)
        try:
            code = subprocess.run(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
    wall = time.monotonic() - start
    (out.parent / f"run-{k:02d}.result").write_text(f"{code} {wall:.3f}\n")
    return code, wall, read_run(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="how many whole-suite runs (default 5)")
    ap.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (-n), 0: none")
    ap.add_argument("--burn", type=int, default=0, help="CPU-burning neighbours to start")
    ap.add_argument(
        "--spray", action="store_true", help="a neighbour spraying stray datagrams (see above)"
    )
    ap.add_argument("--defect", action="append", default=[], help="defect switch (repeatable)")
    ap.add_argument("--req", action="append", default=[], help="only these requirements")
    ap.add_argument("--timeout", type=float, default=900, help="per run, seconds (default 900)")
    ap.add_argument("--keep", default=None, help="keep the runs' reports in this directory")
    ap.add_argument("--json", default=None, help="also write the counts to this file")
    ap.add_argument(
        "--from",
        dest="tally",
        default=None,
        metavar="DIR",
        help="run nothing: count again the runs kept in DIR by an earlier --keep",
    )
    args = ap.parse_args(argv)
    if args.tally:
        kept = sorted(p for p in Path(args.tally).glob("run-*") if p.is_dir())
        args.runs = len(kept)

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="confsec-stab-"))
    workdir.mkdir(parents=True, exist_ok=True)
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    reasons: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    lags: list[float] = []
    codes: list[int] = []
    walls: list[float] = []
    burners = [] if args.tally else start_burners(args.burn, args.spray)
    label = (
        f"{args.runs} runs, {'-n ' + str(args.workers) if args.workers else 'one process'}"
        f"{f', beside {args.burn} CPU burner(s)' if args.burn else ''}"
        f"{', beside a stray-datagram sprayer' if args.spray else ''}"
        f"{', defect ' + ','.join(args.defect) if args.defect else ', compliant reference'}"
        f"{', ' + ' '.join(args.req) if args.req else ''}; {os.cpu_count()} CPUs"
    )
    print(f"verdict stability: {label}", flush=True)
    try:
        for k in range(1, args.runs + 1):
            if args.tally:
                out = kept[k - 1]
                res = out.with_suffix(".result")
                code, wall = (-9, 0.0)
                if res.is_file():
                    c, w = res.read_text().split()
                    code, wall = int(c), float(w)
                scenarios = read_run(out)
            else:
                code, wall, scenarios = one_run(args, workdir, k)
            codes.append(code)
            walls.append(wall)
            seen: set[tuple[str, str]] = set()
            for s in scenarios:
                key = (s["requirement"], example_name(s))
                counts[key][s["verdict"]] += 1
                seen.add(key)
                if s["verdict"] not in ("pass", "not applicable"):
                    reasons[key][(s.get("reason") or "")[:300]] += 1
                lag = (s.get("numbers") or {}).get("suite_lateness.loop_lag_ms")
                if lag is not None:
                    lags.append(float(lag))
            missing = [key for key in counts if key not in seen]
            for key in missing:  # a run that did not report a scenario at all
                counts[key]["missing"] += 1
            bad = sum(1 for s in scenarios if s["verdict"] not in ("pass", "not applicable"))
            print(
                f"  run {k:2d}/{args.runs}: exit {code}, {wall:5.1f} s, {len(scenarios)} "
                f"scenarios, {bad} not pass",
                flush=True,
            )
    finally:
        stop(burners)

    flips = {key: c for key, c in counts.items() if len(c) > 1 or sum(c.values()) != args.runs}
    width = min(90, max((len(n) for _, n in counts), default=10))
    header = f"{'req':4} {'scenario':{width}} " + " ".join(f"{v[:5]:>5}" for v in VERDICTS)
    print()
    print(header + "  flips")
    print("-" * len(header + "  flips"))
    for (rid, name), c in sorted(counts.items()):
        flipped = sum(c.values()) - max(c.values()) if (rid, name) in flips else 0
        cells = " ".join(f"{c.get(v, 0):5d}" for v in VERDICTS)
        print(f"{rid:4} {name[:width]:{width}} {cells}  {flipped:5d}")
    totals = Counter()
    for c in counts.values():
        totals.update(c)
    print("-" * len(header + "  flips"))
    print(
        f"scenarios: {len(counts)}; verdicts: "
        + ", ".join(f"{v} {totals.get(v, 0)}" for v in (*VERDICTS, "missing") if totals.get(v))
    )
    print(f"flips: {len(flips)} scenario(s) did not give one verdict in every run")
    print(f"exit codes: {dict(sorted(Counter(codes).items()))} (-9: not recorded)")
    print(
        f"wall per run: min {min(walls):.1f} s, median {sorted(walls)[len(walls) // 2]:.1f} s, "
        f"max {max(walls):.1f} s"
    )
    if lags:
        print(
            f"suite loop lag in R6 windows (ms): median {sorted(lags)[len(lags) // 2]:.1f}, "
            f"max {max(lags):.1f} ({len(lags)} windows)"
        )
    if reasons:
        print("\nreasons for verdicts other than pass:")
        for (rid, name), rs in sorted(reasons.items()):
            for reason, n in rs.most_common():
                print(f"  {rid} {name}: {n}x {reason}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "label": label,
                    "codes": codes,
                    "walls": walls,
                    "flips": len(flips),
                    "counts": {f"{r} {n}": dict(c) for (r, n), c in counts.items()},
                },
                indent=2,
            )
        )
    print(f"\nreports of each run: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
