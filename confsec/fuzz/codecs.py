"""Mutation fuzz of confsec's sans-IO parsers, in memory.

Every parser must either return or raise its own parse error (a `RemoteProtocolError`); anything
else is a crash, and an input that takes longer than the hang limit is a hang. Inputs are
mutations (`confsec.fuzz.mutate`) of wire samples, which the caller names by directory: the
samples live with the tests, not in the package.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confsec.codec.bfcp import BfcpStream, parse_bfcp
from confsec.codec.conference_info import parse_conference_info
from confsec.codec.digest import parse_challenge, parse_credentials
from confsec.codec.sdp import parse_sdp
from confsec.codec.sip import SipStream, parse_message
from confsec.errors import RemoteProtocolError
from confsec.fuzz.mutate import mutate
from confsec.media.rtp import RtpPacket

SHOWN_CRASHES = 3
"""Crashes of one parser described in full: the rest are the same bug more often than not."""


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
"""Parser name -> the function that feeds it one input, and the sample files it mutates."""

DIGEST_SEEDS = [
    b'Digest realm="conference.example.test", nonce="abc", algorithm=SHA-256, qop="auth"',
    b'Digest username="alice", realm="r", nonce="n", uri="sips:x@y", response="00", '
    b'algorithm=SHA-256, cnonce="c", qop=auth, nc=00000001',
]
"""Digest headers have no sample files: a challenge and a response to start from."""


@dataclass
class ParserRun:
    """What became of one parser's inputs."""

    parser: str
    inputs: int
    parsed: int
    crashes: int
    hangs: int
    slowest_ms: float
    rate_per_s: int


def corpus_for(name: str, samples: Path) -> list[bytes]:
    """The seeds of parser `name`: its sample files under `samples`, else the digest seeds."""
    _, patterns = TARGETS[name]
    corpus = [p.read_bytes() for pat in patterns for p in sorted(samples.glob(pat))]
    return corpus or list(DIGEST_SEEDS)


def run(
    name: str,
    n: int,
    hang: float,
    out: Path,
    rng: random.Random,
    samples: Path,
    on_crash: Callable[[str], None] | None = None,
) -> ParserRun:
    """`n` mutated inputs to parser `name`; crashing inputs are written to `out` for replay,
    and the first few crashes are told to `on_crash` as they happen (a long run shows a bug
    long before it ends)."""
    fn, _ = TARGETS[name]
    corpus = corpus_for(name, samples)
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
            if crashes <= SHOWN_CRASHES and on_crash is not None:
                on_crash(f"{type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - t0
        slowest = max(slowest, elapsed)
        if elapsed > hang:
            hangs += 1
    wall = time.perf_counter() - started
    return ParserRun(
        parser=name,
        inputs=n,
        parsed=parsed,
        crashes=crashes,
        hangs=hangs,
        slowest_ms=round(slowest * 1000, 2),
        rate_per_s=round(n / wall),
    )
