"""RTP framing: named samples, every truncation, round trips and arbitrary bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confsec.errors import LocalProtocolError, RemoteProtocolError
from confsec.media.rtp import (
    RtpHeader,
    RtpPacket,
    RtpParseError,
    build_rtp,
    looks_like_rtcp,
    peek_ssrc_seq,
    rtp_header_length,
    rtp_payload_bounds,
)

DATA = Path(__file__).parent.parent / "data" / "media"
SAMPLES = sorted(p.name for p in DATA.glob("rtp_*.bin"))


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_samples_present() -> None:
    assert len(SAMPLES) == 4


def test_pcmu_sample() -> None:
    p = RtpPacket.parse(load("rtp_pcmu.bin"))
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (
        0,
        0x1234,
        0xDEADBEEF,
        0x11223344,
    )
    assert not p.marker and p.header.csrcs == () and p.header.extension_profile is None
    assert p.payload == b"\xff" * 160 and p.padding_size == 0


def test_marker_dynamic_sample() -> None:
    p = RtpPacket.parse(load("rtp_marker_dynamic.bin"))
    assert p.marker and p.payload_type == 96 and p.sequence_number == 0xFFFF
    assert p.ssrc == 0xCAFEBABE and p.payload == bytes(range(20))


def test_csrc_extension_sample() -> None:
    p = RtpPacket.parse(load("rtp_csrc_ext.bin"))
    assert p.payload_type == 8
    assert p.header.csrcs == (0xAAAAAAAA, 0xBBBBBBBB)
    assert p.header.extension_profile == 0xBEDE
    assert p.header.extension_data == bytes([0x10, 0xAB, 0, 0])
    assert p.payload == b"\xd5" * 32
    assert p.header.length == 12 + 8 + 8 == rtp_header_length(p.raw or b"")


def test_padding_sample() -> None:
    p = RtpPacket.parse(load("rtp_padding.bin"))
    assert p.padding_size == 4 and p.payload == b"\x7f" * 20


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip(name: str) -> None:
    data = load(name)
    packet = RtpPacket.parse(data)
    assert packet.raw == data
    assert packet.to_bytes() == data
    assert RtpPacket.parse(packet.to_bytes()) == packet


@pytest.mark.parametrize("name", SAMPLES)
def test_every_truncated_header_raises(name: str) -> None:
    data = load(name)
    hlen = rtp_header_length(data)
    for n in range(hlen):
        with pytest.raises(RtpParseError):
            RtpPacket.parse(data[:n])
        with pytest.raises(RtpParseError):
            rtp_header_length(data[:n])


@pytest.mark.parametrize("name", SAMPLES)
def test_every_truncation_is_a_packet_or_a_parse_error(name: str) -> None:
    data = load(name)
    for n in range(len(data)):
        try:
            RtpPacket.parse(data[:n])
        except RtpParseError as exc:
            assert isinstance(exc, RemoteProtocolError)
            assert exc.reason


def test_truncated_padding_sample_is_refused() -> None:
    # Cut inside the payload: the last octet (0x7f = 127) is then a padding count too large.
    data = load("rtp_padding.bin")[:-4]
    with pytest.raises(RtpParseError, match="padding count 127 exceeds"):
        RtpPacket.parse(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "too short"),
        (b"\x80" * 11, "too short"),
        (struct.pack("!BBHII", 0x40, 0, 1, 2, 3), "bad RTP version 1"),
        (struct.pack("!BBHII", 0x00, 0, 1, 2, 3), "bad RTP version 0"),
        (struct.pack("!BBHII", 0x83, 0, 1, 2, 3) + b"\0" * 8, "CSRC count 3"),
        (struct.pack("!BBHII", 0x90, 0, 1, 2, 3) + b"\xbe", "extension flagged"),
        (struct.pack("!BBHII", 0x90, 0, 1, 2, 3) + b"\xbe\xde\x00\x02\0\0\0\0", "runs past"),
        (struct.pack("!BBHII", 0xA0, 0, 1, 2, 3), "no octet after the header"),
        (struct.pack("!BBHII", 0xA0, 0, 1, 2, 3) + b"ab\x00", "padding count is zero"),
        (struct.pack("!BBHII", 0xA0, 0, 1, 2, 3) + b"ab\x04", "padding count 4 exceeds"),
    ],
)
def test_defects_are_named(data: bytes, match: str) -> None:
    with pytest.raises(RtpParseError, match=match):
        RtpPacket.parse(data)


def test_parse_error_has_offset() -> None:
    with pytest.raises(RtpParseError) as info:
        RtpPacket.parse(b"\x80\x00")
    assert info.value.offset == 2
    assert "at byte 2" in str(info.value)


def test_build_rtp_matches_dataclass() -> None:
    header = RtpHeader(payload_type=0, sequence_number=7, timestamp=1600, ssrc=42, marker=True)
    assert build_rtp(0, 7, 1600, 42, b"abc", marker=True) == RtpPacket(header, b"abc").to_bytes()


def test_build_rtp_wraps_counters() -> None:
    data = build_rtp(0, 0x10001, 0x100000002, 9, b"")
    assert peek_ssrc_seq(data) == (9, 1)
    assert RtpPacket.parse(data).timestamp == 2


def test_peek() -> None:
    assert peek_ssrc_seq(load("rtp_pcmu.bin")) == (0x11223344, 0x1234)
    with pytest.raises(RtpParseError):
        peek_ssrc_seq(b"\x80" * 5)
    with pytest.raises(RtpParseError, match="version"):
        peek_ssrc_seq(b"\x40" + b"\0" * 11)


@pytest.mark.parametrize("name", SAMPLES)
def test_payload_bounds(name: str) -> None:
    data = load(name)
    start, end = rtp_payload_bounds(data)
    assert data[start:end] == RtpPacket.parse(data).payload


def test_builder_checks_ranges() -> None:
    with pytest.raises(LocalProtocolError):
        RtpHeader(payload_type=128, sequence_number=0, timestamp=0, ssrc=0)
    with pytest.raises(LocalProtocolError):
        RtpHeader(payload_type=0, sequence_number=65536, timestamp=0, ssrc=0)
    with pytest.raises(LocalProtocolError):
        RtpHeader(payload_type=0, sequence_number=0, timestamp=0, ssrc=0, csrcs=(1,) * 16)
    with pytest.raises(LocalProtocolError):
        RtpHeader(0, 0, 0, 0, extension_profile=1, extension_data=b"abc")
    with pytest.raises(LocalProtocolError):
        RtpPacket(RtpHeader(0, 0, 0, 0), b"", padding_size=256)


def test_rtcp_demux() -> None:
    assert looks_like_rtcp(bytes([0x80, 200]) + b"\0" * 6)  # SR
    assert looks_like_rtcp(bytes([0x81, 201]) + b"\0" * 6)  # RR
    assert not looks_like_rtcp(load("rtp_pcmu.bin"))
    assert not looks_like_rtcp(load("rtp_marker_dynamic.bin"))  # PT 96 with M: 0xE0 = 224


headers = st.builds(
    RtpHeader,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension_profile=st.none() | st.integers(0, 0xFFFF),
    extension_data=st.just(b""),
)


@given(
    header=headers,
    ext=st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4]),
    payload=st.binary(max_size=200),
    padding=st.integers(0, 255),
)
def test_hypothesis_build_parse(
    header: RtpHeader, ext: bytes, payload: bytes, padding: int
) -> None:
    if header.extension_profile is not None:
        header = RtpHeader(
            header.payload_type,
            header.sequence_number,
            header.timestamp,
            header.ssrc,
            header.marker,
            header.csrcs,
            header.extension_profile,
            ext,
        )
    packet = RtpPacket(header, payload, padding)
    data = packet.to_bytes()
    assert RtpPacket.parse(data) == packet
    assert peek_ssrc_seq(data) == (header.ssrc, header.sequence_number)
    assert rtp_header_length(data) == header.length


@given(st.binary(max_size=300))
def test_hypothesis_any_bytes(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        with pytest.raises(RtpParseError):
            rtp_payload_bounds(data)
        return
    # Whatever parses re-parses to the same packet, and the fast path agrees with it.
    assert RtpPacket.parse(packet.to_bytes()) == packet
    start, end = rtp_payload_bounds(data)
    assert data[start:end] == packet.payload
    assert peek_ssrc_seq(data) == (packet.ssrc, packet.sequence_number)
