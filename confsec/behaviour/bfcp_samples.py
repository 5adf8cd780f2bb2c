"""The malformed BFCP the floor-control robustness probe sends (R8), reproducible from a seed.

scapy's `fuzz()` on the codec's own layers gives messages that are wrong in every field; the
ones kept are those the suite's strict decoder refuses, and each still frames on a stream, so
the server under test has a whole message to judge rather than a stalled read.
"""

from __future__ import annotations

import random

from scapy.packet import fuzz

from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp, BfcpParseError, parse_bfcp


def malformed_samples(count: int, seed: int) -> list[bytes]:
    """`count` fuzzed messages that our strict decoder (`parse_bfcp`) refuses, from `seed`.

    About one `fuzz()` output in forty is well-formed after all; an answer other than an Error
    to one of those would be right, so they are not sent as malformed."""
    rng_state = random.getstate()
    random.seed(seed)
    out: list[bytes] = []
    try:
        for _ in range(count * 20):
            if len(out) == count:
                break
            raw = _malformed()
            try:
                parse_bfcp(raw)
            except BfcpParseError:
                out.append(raw)
    finally:
        random.setstate(rng_state)
    return out


def _malformed() -> bytes:
    """A fuzzed message (scapy `fuzz()` on our layers) that still frames on a stream: the
    Payload Length is set to what was sent, so the server has a whole message to judge."""
    template = Bfcp(
        primitive=b.Primitive.FLOOR_REQUEST,
        attributes=[
            b.BfcpFloorId(floor_id=1),
            b.BfcpFloorRequestInformation(
                floor_request_id=1,
                attributes=[b.BfcpOverallRequestStatus(attributes=[b.BfcpRequestStatus()])],
            ),
            b.BfcpParticipantProvidedInfo(text=b"fuzz"),
        ],
    )
    raw = bytearray(bytes(fuzz(template)))
    header = b.HEADER_LEN + (4 if raw[0] & 0x08 else 0)
    raw += bytes((-(len(raw) - header)) % 4)
    raw[2:4] = ((len(raw) - header) // 4).to_bytes(2, "big")
    return bytes(raw)
