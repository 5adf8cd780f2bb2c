"""The BFCP codec: byte-exact round trips, strict parsing, framing, and tshark as an oracle.

Every primitive of RFC 8855 gets one sample message; each must round-trip byte for byte through
our layers and must be read by tshark's BFCP dissector exactly as we read it (header fields,
the attribute types in tree order, floor ids, request statuses, error codes, texts). tshark is
an independent implementation, so agreement is evidence the wire format is right, not merely
self-consistent.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw, fuzz
from scapy.utils import wrpcap

from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp, BfcpParseError, BfcpStream, parse_bfcp

PORT = 40123


def _fri(req_id: int, status: int, floor: int = 1) -> b.BfcpAttribute:
    return b.BfcpFloorRequestInformation(
        floor_request_id=req_id,
        attributes=[
            b.BfcpOverallRequestStatus(
                floor_request_id=req_id,
                attributes=[b.BfcpRequestStatus(request_status=status, queue_position=0)],
            ),
            b.BfcpFloorRequestStatus(
                floor_id=floor,
                attributes=[
                    b.BfcpRequestStatus(request_status=status),
                    b.BfcpStatusInfo(text=b"ok"),
                ],
            ),
            b.BfcpBeneficiaryInformation(
                beneficiary_id=2,
                attributes=[b.BfcpUserDisplayName(text=b"Bob"), b.BfcpUserUri(text=b"sips:bob@x")],
            ),
            b.BfcpRequestedByInformation(requested_by_id=2),
            b.BfcpPriority(priority=2),
        ],
    )


def _msg(primitive: int, *attrs: b.BfcpAttribute, r: int = 0) -> Bfcp:
    return Bfcp(
        primitive=primitive,
        R=r,
        conference_id=4321,
        transaction_id=primitive + 100,
        user_id=2,
        attributes=list(attrs),
    )


SAMPLES: dict[str, Bfcp] = {
    "FloorRequest": _msg(
        1, b.BfcpFloorId(floor_id=1), b.BfcpParticipantProvidedInfo(text=b"may I?")
    ),
    "FloorRelease": _msg(2, b.BfcpFloorRequestId(floor_request_id=7)),
    "FloorRequestQuery": _msg(3, b.BfcpFloorRequestId(floor_request_id=7)),
    "FloorRequestStatus": _msg(4, _fri(7, 3), r=1),
    "UserQuery": _msg(5, b.BfcpBeneficiaryId(beneficiary_id=3)),
    "UserStatus": _msg(
        6,
        b.BfcpBeneficiaryInformation(
            beneficiary_id=3, attributes=[b.BfcpUserUri(text=b"sips:c@x")]
        ),
        _fri(8, 1),
        r=1,
    ),
    "FloorQuery": _msg(7, b.BfcpFloorId(floor_id=1)),
    "FloorStatus": _msg(8, b.BfcpFloorId(floor_id=1), _fri(7, 3)),
    "ChairAction": _msg(9, _fri(7, 4)),
    "ChairActionAck": _msg(10, r=1),
    "Hello": _msg(11),
    "HelloAck": _msg(
        12,
        b.BfcpSupportedPrimitives(primitives=[1, 2, 4, 8, 11, 12, 13]),
        b.BfcpSupportedAttributes(attributes=[t << 1 for t in (1, 2, 3, 5, 6, 7, 9, 15, 17, 18)]),
        r=1,
    ),
    "Error": _msg(
        13, b.BfcpErrorCode(error_code=5), b.BfcpErrorInfo(text=b"not your user id"), r=1
    ),
    "FloorRequestStatusAck": _msg(14),
    "FloorStatusAck": _msg(15),
    "Goodbye": _msg(16),
    "GoodbyeAck": _msg(17, r=1),
}


def _flatten(attrs: list) -> list:
    out = []
    for a in attrs:
        out.append(a)
        if a.type in b.GROUPED:
            out += _flatten(list(a.attributes))
    return out


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_primitive_round_trips_byte_for_byte(name: str) -> None:
    raw = bytes(SAMPLES[name])
    assert len(raw) % 4 == 0
    msg = parse_bfcp(raw)
    assert msg.primitive_name == name
    assert bytes(msg) == raw
    assert bytes(Bfcp(raw)) == raw


def test_known_header_bytes() -> None:
    """RFC 8855 5.1 by hand: Ver=1, R=0, F=0, primitive Hello, empty payload."""
    raw = bytes(Bfcp(primitive=11, conference_id=1, transaction_id=2, user_id=3))
    assert raw == bytes.fromhex("200b00000000000100020003")


def test_text_attribute_is_padded_and_length_excludes_padding() -> None:
    raw = bytes(b.BfcpErrorInfo(text=b"abc"))
    assert raw == bytes.fromhex("0e05616263000000")


def test_a_length_set_by_hand_is_kept_and_refused_by_the_strict_parser() -> None:
    raw = bytes(_msg(1, b.BfcpFloorId(floor_id=1, length=9)))
    msg = Bfcp(raw)
    assert type(msg.attributes[0]) is b.BfcpAttribute  # falls back to the generic TLV
    assert bytes(msg) == raw
    with pytest.raises(BfcpParseError):
        parse_bfcp(raw)


def test_unknown_attribute_falls_back_to_generic() -> None:
    raw = bytes(_msg(11, b.BfcpAttribute(type=99, value=b"zz")))
    msg = parse_bfcp(raw)
    assert type(msg.attributes[0]) is b.BfcpAttribute and msg.attributes[0].value == b"zz"
    assert bytes(msg) == raw
    mandatory = bytes(_msg(11, b.BfcpAttribute(type=99, M=1, value=b"zz")))
    with pytest.raises(BfcpParseError) as err:
        parse_bfcp(mandatory)
    assert err.value.error_code == 4


@pytest.mark.parametrize("name", ["FloorRequestStatus", "HelloAck", "Error"])
def test_every_truncation_is_refused_and_still_round_trips(name: str) -> None:
    raw = bytes(SAMPLES[name])
    for n in range(len(raw)):
        with pytest.raises(BfcpParseError):
            parse_bfcp(raw[:n])
        if n >= b.HEADER_LEN:
            assert bytes(Bfcp(raw[:n])) == raw[:n]


def test_wrong_payload_length_and_version_are_refused() -> None:
    raw = bytearray(bytes(SAMPLES["FloorRequest"]))
    raw[3] += 1
    with pytest.raises(BfcpParseError) as err:
        parse_bfcp(bytes(raw))
    assert err.value.error_code == 13
    raw = bytearray(bytes(SAMPLES["Hello"]))
    raw[0] = (7 << 5) | (raw[0] & 0x1F)
    with pytest.raises(BfcpParseError) as err:
        parse_bfcp(bytes(raw))
    assert err.value.error_code == 12


def test_fuzzed_messages_round_trip_and_never_escape_as_other_errors() -> None:
    random.seed(4)
    template = _msg(1, b.BfcpFloorId(), _fri(1, 3))
    for _ in range(300):
        raw = bytes(fuzz(template))
        try:
            parse_bfcp(raw)
        except BfcpParseError:
            pass
        assert bytes(Bfcp(raw)) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=b.HEADER_LEN, max_size=200))
def test_arbitrary_bytes_round_trip_or_fail_with_a_bfcp_error(data: bytes) -> None:
    try:
        msg = parse_bfcp(data)
    except BfcpParseError:
        pass
    else:
        assert bytes(msg) == data
    # The lenient decoder needs a whole COMMON-HEADER (16 bytes when the F bit is set).
    if len(data) >= b.HEADER_LEN + (4 if data[0] & 0x08 else 0):
        assert bytes(Bfcp(data)) == data


def test_stream_framing_splits_and_joins() -> None:
    data = b"".join(bytes(SAMPLES[n]) for n in ("Hello", "FloorRequest", "FloorStatus"))
    stream = BfcpStream()
    got = []
    for i in range(0, len(data), 5):
        stream.feed(data[i : i + 5])
        while (m := stream.next_message()) is not None:
            got.append(parse_bfcp(m).primitive_name)
    assert got == ["Hello", "FloorRequest", "FloorStatus"]
    assert stream.buffered == 0
    huge = BfcpStream(max_message=64)
    huge.feed(bytes.fromhex("2001ffff") + bytes(8))
    with pytest.raises(BfcpParseError):
        huge.next_message()


# -- tshark ------------------------------------------------------------------------------------

TSHARK = shutil.which("tshark")
FIELDS = (
    "bfcp.primitive",
    "bfcp.hdr_r_bit",
    "bfcp.payload_length",
    "bfcp.conference_id",
    "bfcp.transaction_id",
    "bfcp.user_id",
    "bfcp.attribute_type",
    "bfcp.floor_id",
    "bfcp.request_status",
    "bfcp.error_code",
    "bfcp.supp_primitive",
)


def _ours(msg: Bfcp) -> dict[str, list[str]]:
    flat = _flatten(list(msg.attributes))
    return {
        "bfcp.primitive": [str(msg.primitive)],
        "bfcp.hdr_r_bit": ["1" if msg.R else "0"],
        "bfcp.payload_length": [str(msg.payload_length)],
        "bfcp.conference_id": [str(msg.conference_id)],
        "bfcp.transaction_id": [str(msg.transaction_id)],
        "bfcp.user_id": [str(msg.user_id)],
        "bfcp.attribute_type": [str(a.type) for a in flat],
        "bfcp.floor_id": [str(a.floor_id) for a in flat if a.type in (2, 17)],
        "bfcp.request_status": [str(a.request_status) for a in flat if a.type == 5],
        "bfcp.error_code": [str(a.error_code) for a in flat if a.type == 6],
        "bfcp.supp_primitive": [str(p) for a in flat if a.type == 11 for p in a.primitives],
    }


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_reads_every_primitive_as_we_do(tmp_path: Path) -> None:
    names = list(SAMPLES)
    frames = [
        Ether()
        / IP(src="127.0.0.1", dst="127.0.0.1")
        / TCP(sport=50000 + i, dport=PORT, flags="PA", seq=1000)
        / Raw(bytes(SAMPLES[n]))
        for i, n in enumerate(names)
    ]
    pcap = tmp_path / "bfcp.pcap"
    wrpcap(str(pcap), frames)
    cmd = [TSHARK, "-n", "-r", str(pcap), "-d", f"tcp.port=={PORT},bfcp", "-T", "fields"]
    cmd += [x for f in FIELDS for x in ("-e", f)]
    cmd += ["-E", "separator=\t", "-E", "aggregator=,", "-E", "occurrence=a"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = out.rstrip("\n").split("\n")
    assert len(rows) == len(names), out
    for name, row in zip(names, rows, strict=True):
        theirs = {
            f: (v.split(",") if v else []) for f, v in zip(FIELDS, row.split("\t"), strict=True)
        }
        theirs["bfcp.hdr_r_bit"] = [
            "1" if v in ("1", "True") else "0" for v in theirs["bfcp.hdr_r_bit"]
        ]
        ours = _ours(parse_bfcp(bytes(SAMPLES[name])))
        assert theirs == ours, name
