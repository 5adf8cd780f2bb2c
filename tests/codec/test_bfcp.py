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
from confsec.codec.bfcp import (
    AttributeType,
    Bfcp,
    BfcpParseError,
    BfcpStream,
    ErrorCode,
    Primitive,
    RequestStatus,
    parse_bfcp,
)

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


P, A, S = Primitive, AttributeType, RequestStatus
SAMPLES: dict[str, Bfcp] = {
    "FloorRequest": _msg(
        P.FLOOR_REQUEST, b.BfcpFloorId(floor_id=1), b.BfcpParticipantProvidedInfo(text=b"may I?")
    ),
    "FloorRelease": _msg(P.FLOOR_RELEASE, b.BfcpFloorRequestId(floor_request_id=7)),
    "FloorRequestQuery": _msg(P.FLOOR_REQUEST_QUERY, b.BfcpFloorRequestId(floor_request_id=7)),
    "FloorRequestStatus": _msg(P.FLOOR_REQUEST_STATUS, _fri(7, S.GRANTED), r=1),
    "UserQuery": _msg(P.USER_QUERY, b.BfcpBeneficiaryId(beneficiary_id=3)),
    "UserStatus": _msg(
        P.USER_STATUS,
        b.BfcpBeneficiaryInformation(
            beneficiary_id=3, attributes=[b.BfcpUserUri(text=b"sips:c@x")]
        ),
        _fri(8, S.PENDING),
        r=1,
    ),
    "FloorQuery": _msg(P.FLOOR_QUERY, b.BfcpFloorId(floor_id=1)),
    "FloorStatus": _msg(P.FLOOR_STATUS, b.BfcpFloorId(floor_id=1), _fri(7, S.GRANTED)),
    "ChairAction": _msg(P.CHAIR_ACTION, _fri(7, S.DENIED)),
    "ChairActionAck": _msg(P.CHAIR_ACTION_ACK, r=1),
    "Hello": _msg(P.HELLO),
    "HelloAck": _msg(
        P.HELLO_ACK,
        b.BfcpSupportedPrimitives(
            primitives=[
                P.FLOOR_REQUEST,
                P.FLOOR_RELEASE,
                P.FLOOR_REQUEST_STATUS,
                P.FLOOR_STATUS,
                P.HELLO,
                P.HELLO_ACK,
                P.ERROR,
            ]
        ),
        b.BfcpSupportedAttributes(
            attributes=[
                t << 1
                for t in (
                    A.BENEFICIARY_ID,
                    A.FLOOR_ID,
                    A.FLOOR_REQUEST_ID,
                    A.REQUEST_STATUS,
                    A.ERROR_CODE,
                    A.ERROR_INFO,
                    A.STATUS_INFO,
                    A.FLOOR_REQUEST_INFORMATION,
                    A.FLOOR_REQUEST_STATUS,
                    A.OVERALL_REQUEST_STATUS,
                )
            ]
        ),
        r=1,
    ),
    "Error": _msg(
        P.ERROR,
        b.BfcpErrorCode(error_code=ErrorCode.UNAUTHORIZED_OPERATION),
        b.BfcpErrorInfo(text=b"not your user id"),
        r=1,
    ),
    "FloorRequestStatusAck": _msg(P.FLOOR_REQUEST_STATUS_ACK),
    "FloorStatusAck": _msg(P.FLOOR_STATUS_ACK),
    "Goodbye": _msg(P.GOODBYE),
    "GoodbyeAck": _msg(P.GOODBYE_ACK, r=1),
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
    raw = bytes(Bfcp(primitive=Primitive.HELLO, conference_id=1, transaction_id=2, user_id=3))
    assert raw == bytes.fromhex("200b00000000000100020003")


def test_the_number_names_are_the_rfc_tables() -> None:
    """The enums and the name tables scapy shows are one list: RFC 8855 Tables 2, 3 and 5."""
    assert b.PRIMITIVES == {p.value: name for p, name in zip(Primitive, SAMPLES, strict=True)}
    assert list(b.ATTRIBUTE_NAMES) == list(AttributeType) == list(range(1, 19))
    assert b.ATTRIBUTE_NAMES[AttributeType.PARTICIPANT_PROVIDED_INFO] == "PARTICIPANT-PROVIDED-INFO"
    assert b.REQUEST_STATUS[RequestStatus.CANCELLED] == "Cancelled"
    assert list(b.ERROR_CODES) == list(ErrorCode) == list(range(1, 15))
    assert b.ERROR_CODES[ErrorCode.MAX_FLOOR_REQUESTS_REACHED].startswith("Maximum Number")
    assert set(b.ATTRIBUTES) == set(AttributeType)
    assert all(type(k) is int for k in (*b.PRIMITIVES, *b.ATTRIBUTE_NAMES, *b.ERROR_CODES))


def test_text_attribute_is_padded_and_length_excludes_padding() -> None:
    raw = bytes(b.BfcpErrorInfo(text=b"abc"))
    assert raw == bytes.fromhex("0e05616263000000")


def test_a_length_set_by_hand_is_kept_and_refused_by_the_strict_parser() -> None:
    raw = bytes(_msg(Primitive.FLOOR_REQUEST, b.BfcpFloorId(floor_id=1, length=9)))
    msg = Bfcp(raw)
    assert type(msg.attributes[0]) is b.BfcpAttribute  # falls back to the generic TLV
    assert bytes(msg) == raw
    with pytest.raises(BfcpParseError):
        parse_bfcp(raw)


def test_unknown_attribute_falls_back_to_generic() -> None:
    raw = bytes(_msg(Primitive.HELLO, b.BfcpAttribute(type=99, value=b"zz")))
    msg = parse_bfcp(raw)
    assert type(msg.attributes[0]) is b.BfcpAttribute and msg.attributes[0].value == b"zz"
    assert bytes(msg) == raw
    mandatory = bytes(_msg(Primitive.HELLO, b.BfcpAttribute(type=99, M=1, value=b"zz")))
    with pytest.raises(BfcpParseError) as err:
        parse_bfcp(mandatory)
    assert err.value.error_code == ErrorCode.UNKNOWN_MANDATORY_ATTRIBUTE


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
    assert err.value.error_code == ErrorCode.INCORRECT_MESSAGE_LENGTH
    raw = bytearray(bytes(SAMPLES["Hello"]))
    raw[0] = (7 << 5) | (raw[0] & 0x1F)
    with pytest.raises(BfcpParseError) as err:
        parse_bfcp(bytes(raw))
    assert err.value.error_code == ErrorCode.UNSUPPORTED_VERSION


def test_fuzzed_messages_round_trip_and_never_escape_as_other_errors() -> None:
    random.seed(4)
    template = _msg(Primitive.FLOOR_REQUEST, b.BfcpFloorId(), _fri(1, RequestStatus.GRANTED))
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
        "bfcp.floor_id": [
            str(a.floor_id)
            for a in flat
            if a.type in (AttributeType.FLOOR_ID, AttributeType.FLOOR_REQUEST_STATUS)
        ],
        "bfcp.request_status": [
            str(a.request_status) for a in flat if a.type == AttributeType.REQUEST_STATUS
        ],
        "bfcp.error_code": [str(a.error_code) for a in flat if a.type == AttributeType.ERROR_CODE],
        "bfcp.supp_primitive": [
            str(p)
            for a in flat
            if a.type == AttributeType.SUPPORTED_PRIMITIVES
            for p in a.primitives
        ],
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
