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
import time
from collections.abc import Callable
from pathlib import Path

from confsec.codec.bfcp import BfcpStream, parse_bfcp
from confsec.codec.conference_info import parse_conference_info
from confsec.codec.digest import parse_challenge, parse_credentials
from confsec.codec.sdp import parse_sdp
from confsec.codec.sip import SipStream, parse_message
from confsec.errors import RemoteProtocolError
from confsec.media.rtp import RtpPacket

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def _sip_stream(data: bytes) -> None:
    stream = SipStream()
    stream.feed(data)
    while stream.next_message() is not None:
        pass


def _bfcp_stream(data: bytes) -> None:
    stream = BfcpStream()
    stream.feed(data)
    while (message := stream.next_message()) is not None:
        parse_bfcp(message)


def _sdp(data: bytes) -> None:
    sdp = parse_sdp(data)
    for m in sdp.media:
        _ = m.crypto  # a=crypto is parsed lazily: exercise it too


def _digest(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        parse_challenge(text)
    finally:
        parse_credentials(text)


TARGETS: dict[str, tuple[Callable[[bytes], object], list[str]]] = {
    "sip.parse_message": (parse_message, ["sip/*.sip"]),
    "sip.SipStream": (_sip_stream, ["sip/*.sip"]),
    "sdp.parse_sdp": (_sdp, ["sdp/*.sdp"]),
    "rtp.RtpPacket.parse": (RtpPacket.parse, ["media/*.bin"]),
    "digest.parse": (_digest, []),
    "bfcp.parse_bfcp": (parse_bfcp, ["bfcp/*.bin"]),
    "bfcp.BfcpStream": (_bfcp_stream, ["bfcp/*.bin"]),
    "conference_info.parse": (parse_conference_info, ["conference_info/*.xml"]),
}

DIGEST_SEEDS = [
    b'Digest realm="conference.example.test", nonce="abc", algorithm=SHA-256, qop="auth"',
    b'Digest username="alice", realm="r", nonce="n", uri="sips:x@y", response="00", '
    b'algorithm=SHA-256, cnonce="c", qop=auth, nc=00000001',
]


def mutate(rng: random.Random, seed: bytes, corpus: list[bytes]) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = bytes([rng.choice((0, 10, 13, 32, 58, 59, 44, 34, 60, 62, 255))])
        elif op == 2 and data:
            del data[pos : pos + rng.randint(1, 16)]
        elif op == 3:
            del data[pos:]
        elif op == 4:
            other = rng.choice(corpus)
            start = rng.randrange(len(other) + 1)
            data[pos:pos] = other[start : start + rng.randint(1, 64)]
        elif op == 5 and data:
            chunk = data[pos : pos + rng.randint(1, 32)]
            data[pos:pos] = chunk * rng.randint(2, 50)
        elif op == 6:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)


def run(name: str, n: int, hang: float, out: Path, rng: random.Random) -> dict[str, object]:
    fn, patterns = TARGETS[name]
    corpus = [p.read_bytes() for pat in patterns for p in sorted(DATA.glob(pat))]
    if not corpus:
        corpus = list(DIGEST_SEEDS)
    crashes = hangs = parsed = 0
    slowest = 0.0
    started = time.perf_counter()
    for i in range(n):
        data = mutate(rng, rng.choice(corpus), corpus)
        t0 = time.perf_counter()
        try:
            fn(data)
            parsed += 1
        except RemoteProtocolError:
            pass
        except Exception as exc:
            crashes += 1
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{name}-{i}.bin").write_bytes(data)
            if crashes <= 3:
                print(f"  crash in {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        elapsed = time.perf_counter() - t0
        slowest = max(slowest, elapsed)
        if elapsed > hang:
            hangs += 1
    wall = time.perf_counter() - started
    return {
        "parser": name,
        "inputs": n,
        "parsed": parsed,
        "crashes": crashes,
        "hangs": hangs,
        "slowest_ms": round(slowest * 1000, 2),
        "rate_per_s": round(n / wall),
    }


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
        r = run(name, args.inputs, args.hang, args.out, rng)
        total_crashes += int(r["crashes"])
        total_hangs += int(r["hangs"])
        print(
            f"{r['parser']:<22}{r['inputs']:>10}{r['parsed']:>10}{r['crashes']:>9}"
            f"{r['hangs']:>7}{r['slowest_ms']:>12}{r['rate_per_s']:>10}",
            flush=True,
        )
    print(f"total: crashes {total_crashes}, hangs {total_hangs}")
    return 1 if total_crashes or total_hangs else 0


if __name__ == "__main__":
    sys.exit(main())
