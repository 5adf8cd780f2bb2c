"""RTCP compounds and SRTCP (confsec/media/rtcp.py, SrtpSender.protect_rtcp /
SrtpReceiver.try_unprotect_rtcp): what a participant sends, and how plain RTCP is told from
SRTCP."""

from __future__ import annotations

import pytest

from confsec.media import rtcp
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.srtp import AUTH_FAILED, OK, REPLAYED, new_master_key, new_receiver, new_sender

SUITE = "AES_CM_128_HMAC_SHA1_80"
SEND = StreamId("alice", "focus", "audio", "send")
RECV = StreamId("focus", "alice", "audio", "recv")


def report(ssrc: int = 0x1234) -> bytes:
    return rtcp.compound(
        rtcp.sender_report(ssrc, (3_900_000_000 << 32) | 1, 160, 50, 8000),
        rtcp.sdes_cname(ssrc, "alice@confsec"),
    )


def test_a_compound_report_parses_back() -> None:
    packets = rtcp.parse_compound(report())
    assert [(p.packet_type, p.ssrc) for p in packets] == [(rtcp.SR, 0x1234), (rtcp.SDES, 0x1234)]
    assert sum(p.length for p in packets) == len(report())
    leaving = rtcp.compound(rtcp.receiver_report(7), rtcp.bye(7, "bye"))
    assert [p.packet_type for p in rtcp.parse_compound(leaving)] == [rtcp.RR, rtcp.BYE]
    assert rtcp.is_plain_rtcp(report()) and rtcp.is_plain_rtcp(leaving)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x80\xc8\x00", "shorter"),
        (b"\x40\xc8\x00\x01" + bytes(4), "version 1"),
        (b"\x80\x60\x00\x01" + bytes(4), "not RTCP"),
        (b"\x80\xc8\x00\x09" + bytes(8), "claims 40 octets"),
    ],
)
def test_what_is_not_an_rtcp_compound_is_named(data: bytes, why: str) -> None:
    with pytest.raises(rtcp.RtcpParseError, match=why):
        rtcp.parse_compound(data)
    assert not rtcp.is_plain_rtcp(data)


def test_srtcp_has_an_index_and_a_tag_and_authenticates_once() -> None:
    ledger = KeyStreamLedger()
    key, salt = new_master_key(SUITE)
    tx = new_sender(ledger, SEND, SUITE, key, salt)
    rx = new_receiver(ledger, RECV, SUITE, key, salt)
    first, second = tx.protect_rtcp(report()), tx.protect_rtcp(report())
    assert len(first) == len(report()) + 4 + 10  # E flag and index, 80-bit tag
    assert not rtcp.is_plain_rtcp(first)
    enc1, index1 = rtcp.srtcp_trailer(first, 10) or (False, -1)
    assert enc1 and rtcp.srtcp_trailer(second, 10) == (True, index1 + 1)  # libsrtp starts at 1
    assert first[8:28] != report()[8:28]  # encrypted from octet 8 on
    assert rx.try_unprotect_rtcp(first) == report()
    assert rx.try_unprotect_rtcp(first) is None and rx.last_status == REPLAYED
    forged = second[:-1] + bytes([second[-1] ^ 1])
    assert rx.try_unprotect_rtcp(forged) is None and rx.last_status == AUTH_FAILED
    assert rx.try_unprotect_rtcp(report()) is None  # plain RTCP never authenticates
    assert rx.rtcp[OK] == 1 and rx.rtcp[REPLAYED] == 1 and rx.rtcp[AUTH_FAILED] >= 1
    assert rtcp.srtcp_trailer(report(), 10) is None  # plain: no trailer to read
    assert tx.rtcp_packets == 2


def test_srtcp_and_srtp_of_one_key_are_different_key_streams() -> None:
    """RFC 3711 4.3.2: SRTCP's session keys come from the same master key with their own
    labels, so an RTP packet and an RTCP packet protected under one master key do not share
    a key stream, and one does not open as the other."""
    ledger = KeyStreamLedger()
    key, salt = new_master_key(SUITE)
    tx = new_sender(ledger, SEND, SUITE, key, salt)
    rx = new_receiver(ledger, RECV, SUITE, key, salt)
    from confsec.media.rtp import build_rtp

    srtp = tx.protect(build_rtp(0, 1, 0, 0x1234, bytes(20)))
    assert rx.try_unprotect_rtcp(srtp) is None
    assert rx.try_unprotect(tx.protect_rtcp(report())) is None
