"""Suite wall time against its inherent protocol time, measured in the same run.

Run: python benchmarks/suite_time.py [--req R3 ...] [--workers N] [--top 8]
(from a checkout; no install needed)

The anchor. A scenario cannot finish faster than the windows its checks wait out by design:
media sent for a stated time (`exchange_media(seconds)`, `Membership.receive(seconds)`), the
target's configured rekey batching window (once per join/leave burst), and a connection watched
for a close (the O1 probe without a client certificate, up to its window). The behaviour layer
adds these up per scenario where it waits (`ConferenceRun.count_window`) and verdicts.json
carries the sum as `protocol_window_s`. Their sum over the run is the *inherent protocol time*;
everything else (TLS handshakes, SIP transactions, key generation, judging, evidence, reports,
pytest and the reference starting up) is the suite's own cost, plus the target's answer times.
Event-driven waits (a response, a NOTIFY, a re-INVITE that arrives) are not windows: they end as
soon as the peer acts, so their time counts as overhead here, not as protocol time.

This runs `confsec run` once against the embedded reference (the whole suite unless --req),
timing it end to end, then reads the run's verdicts.json. Printed: wall time, the pytest
session, the sum of windows and the ratio wall / protocol; per requirement the scenario time,
windows and overhead; the scenarios with the largest overhead. With --workers N (pytest-xdist)
the windows of different workers overlap, so the floor is about protocol / N.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Scenario:
    requirement: str
    name: str
    duration_s: float
    window_s: float

    @property
    def overhead_s(self) -> float:
        return self.duration_s - self.window_s


def run_suite(reqs: list[str], workers: str | None, workdir: Path) -> tuple[float, int, Path]:
    """Run `confsec run` into `workdir`; returns (wall seconds, exit code, reports dir)."""
    reports = workdir / "reports"
    cmd = [sys.executable, "-m", "confsec.cli", "run", "--reports", str(reports)]
    cmd += ["--evidence", str(workdir / "evidence"), "--no-allure-html"]
    cmd += ["--signing-key", str(workdir / "signing-key.pem")]  # leave ~/.config alone
    for req in reqs:
        cmd += ["--req", req]
    if workers:
        cmd += ["-n", workers]
    # The checkout's confsec, even where an older editable install points elsewhere.
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if not (reports / "verdicts.json").is_file():
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"confsec run wrote no verdicts.json (exit {proc.returncode})")
    return wall, proc.returncode, reports


def scenarios(doc: dict) -> list[Scenario]:
    """One row per scenario of the run; a scenario under two requirements is counted once, under
    the first, so that the sums add up to the run."""
    seen: set[str] = set()
    out = []
    for req in doc["requirements"]:
        for s in req["scenarios"]:
            if s["nodeid"] in seen:
                continue
            seen.add(s["nodeid"])
            window = s.get("protocol_window_s")
            if window is None:
                raise SystemExit(
                    "verdicts.json has no protocol_window_s: this confsec predates the window "
                    "accounting"
                )
            name, params = s["name"], s.get("params") or {}
            for key, value in params.items():
                name = name.replace(f"<{key}>", str(value))  # an outline's row, by its values
            if params and name == s["name"]:
                name += f" [{', '.join(map(str, params.values()))}]"
            out.append(Scenario(req["id"], name, s["duration_s"], window))
    return out


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def report(
    rows: list[Scenario], wall: float, session: float, workers: str | None, top: int
) -> None:
    scen_total = sum(r.duration_s for r in rows)
    protocol = sum(r.window_s for r in rows)
    print()
    print(f"{'':<46}{'seconds':>9}")
    print(f"{'wall time, confsec run end to end':<46}{wall:>9.1f}")
    print(f"{'  pytest session (verdicts.json duration_s)':<46}{session:>9.1f}")
    print(f"{'  sum of scenario durations':<46}{scen_total:>9.1f}")
    print(f"{'  startup, collection, reports (wall - session)':<46}{wall - session:>9.1f}")
    print(f"{'inherent protocol time (sum of windows)':<46}{protocol:>9.1f}")
    print(f"{'ratio wall / protocol':<46}{ratio(wall, protocol):>9}")
    print(f"{'ratio scenario time / protocol':<46}{ratio(scen_total, protocol):>9}")
    if workers:
        print(f"(with -n {workers} the windows of different workers overlap)")

    print()
    print(f"{'req':<5}{'scen':>5}{'time s':>9}{'window s':>10}{'overhead s':>12}{'ratio':>7}")
    by_req: dict[str, list[Scenario]] = {}
    for r in rows:
        by_req.setdefault(r.requirement, []).append(r)
    for req, group in sorted(by_req.items(), key=lambda kv: -sum(r.overhead_s for r in kv[1])):
        t = sum(r.duration_s for r in group)
        w = sum(r.window_s for r in group)
        print(f"{req:<5}{len(group):>5}{t:>9.1f}{w:>10.1f}{t - w:>12.1f}{ratio(t, w):>7}")

    print()
    print(f"top {top} overheads (scenario time minus its windows)")
    for r in sorted(rows, key=lambda r: -r.overhead_s)[:top]:
        print(
            f"  {r.overhead_s:6.2f} s  {r.window_s:5.2f} s window  {r.requirement:<4} {r.name[:70]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--req", action="append", default=[], help="only this requirement (repeatable)"
    )
    parser.add_argument("--workers", "-n", default=None, help="pytest-xdist processes (or 'auto')")
    parser.add_argument("--top", type=int, default=8, help="how many scenarios to list (default 8)")
    parser.add_argument(
        "--keep", metavar="DIR", help="write reports and evidence here and keep them"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="confsec-suite-time-") as tmp:
        workdir = Path(args.keep).resolve() if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        what = ", ".join(args.req) if args.req else "whole suite"
        print(
            f"confsec run ({what}, {args.workers or 1} process(es)) against the embedded "
            "reference ...",
            flush=True,
        )
        wall, code, reports = run_suite(args.req, args.workers, workdir)
        doc = json.loads((reports / "verdicts.json").read_text())
        rows = scenarios(doc)
        print(f"exit {code}, {len(rows)} scenarios, requirement verdicts {doc.get('summary')}")
        report(rows, wall, float(doc.get("duration_s", 0.0)), args.workers, args.top)


if __name__ == "__main__":
    main()
