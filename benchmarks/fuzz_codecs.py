"""Long mutation-fuzz run of confsec's sans-IO parsers (outside the normal test run).

Every parser must either return or raise its own parse error (a `RemoteProtocolError`); anything
else is a crash, and an input that takes longer than `--hang` seconds is a hang. Inputs are
mutations (bit flips, byte insertions and deletions, truncations, splices, repeated chunks) of
the wire samples under tests/data/. Prints, per parser, inputs, crashes, hangs and rate; writes
crashing inputs to --out for replay. The property tests in tests/ run the same contract with
hypothesis on every build; this script is the one-million-input run.

    python benchmarks/fuzz_codecs.py --inputs 1000000
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from confsec.fuzz.codecs import TARGETS, run

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=200_000, help="inputs per parser")
    ap.add_argument("--hang", type=float, default=1.0, help="seconds that count as a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=sorted(TARGETS), action="append")
    ap.add_argument("--out", type=Path, default=Path("fuzz-crashes"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    total_crashes = total_hangs = 0
    print(
        f"{'parser':<22}{'inputs':>10}{'parsed':>10}{'crashes':>9}{'hangs':>7}"
        f"{'slowest ms':>12}{'inputs/s':>10}"
    )
    for name in args.only or list(TARGETS):

        def crashed(note: str, name: str = name) -> None:
            print(f"  crash in {name}: {note}", file=sys.stderr)

        r = run(name, args.inputs, args.hang, args.out, rng, DATA, on_crash=crashed)
        total_crashes += r.crashes
        total_hangs += r.hangs
        print(
            f"{r.parser:<22}{r.inputs:>10}{r.parsed:>10}{r.crashes:>9}"
            f"{r.hangs:>7}{r.slowest_ms:>12}{r.rate_per_s:>10}",
            flush=True,
        )
    print(f"total: crashes {total_crashes}, hangs {total_hangs}")
    return 1 if total_crashes or total_hangs else 0


if __name__ == "__main__":
    sys.exit(main())
