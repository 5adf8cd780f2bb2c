"""The `srtp-*` hostile focus is honest about everything but what its mode breaks.

The verdicts pinned in test_hostile_target.py mean something only if the focus answers as a
conformant one would (488 to plain RTP and null ciphers, a proper SDES answer otherwise) and, in
`srtp-bad-tag`, sends packets protected with the very key it announced, whose only defect is
the tag. These tests hold it to that, on real UDP sockets, without confsec's conference layer.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from confsec.codec.sdp import CryptoAttribute, MediaDescription, SessionDescription, parse_sdp
from confsec.codec.sip import Request, Response, parse_message, parse_name_addr, parse_uri
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import AUTH_FAILED, new_receiver, new_sender
from tests.hostile.srtp_focus import SrtpFocus, corrupt_tag

DOMAIN = "conference.example.test"
FACTORY = f"sips:conf-factory@{DOMAIN}"
SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM")


def invite(offer: bytes, *, uri: str = FACTORY, method: str = "INVITE", cseq: int = 1) -> Request:
    return Request(
        method,
        uri,
        [
            ("Via", f"SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK{secrets.token_hex(6)}"),
            ("Max-Forwards", "70"),
            ("From", f"<sips:alice@{DOMAIN}>;tag=a1"),
            ("To", f"<{uri}>"),
            ("Call-ID", "call-1@test"),
            ("CSeq", f"{cseq} {method}"),
            ("Content-Type", "application/sdp"),
        ],
        offer,
    )


def offer_sdp(port: int, *, proto: str = "RTP/SAVP", crypto: CryptoAttribute | None) -> bytes:
    attrs = [("crypto", crypto.to_value())] if crypto is not None else []
    m = MediaDescription.build("audio", port=port, proto=proto, formats=["0"], attributes=attrs)
    return SessionDescription.build("alice", "127.0.0.1", media=[m]).to_bytes()


def focus(send_media: bool) -> SrtpFocus:
    return SrtpFocus(
        DOMAIN, send_media=send_media, spawn=asyncio.ensure_future, record=lambda _raw: None
    )


@pytest.mark.parametrize("suite", SUITES)
def test_corrupt_tag_breaks_only_authentication(suite: str) -> None:
    """The flipped octets are in the tag: the same packet authenticates before the flip."""
    crypto = CryptoAttribute.generate(1, suite)
    ledger = KeyStreamLedger()
    tx = new_sender(ledger, StreamId("f", "a", "audio", "send"), suite, crypto.key, crypto.salt)
    rx = new_receiver(ledger, StreamId("a", "f", "audio", "recv"), suite, crypto.key, crypto.salt)
    packet = tx.protect(build_rtp(0, 1, 160, 0x1234, bytes(160)))
    assert rx.try_unprotect(corrupt_tag(packet)) is None
    assert rx.last_status == AUTH_FAILED
    assert rx.try_unprotect(packet) is not None


@pytest.mark.parametrize(
    ("proto", "suite", "params"),
    [
        ("RTP/AVP", None, ()),
        ("RTP/SAVP", "NULL_HMAC_SHA1_80", ()),
        ("RTP/SAVP", "AES_CM_128_HMAC_SHA1_80", ("UNENCRYPTED_SRTP",)),
    ],
    ids=["plain-rtp", "null-cipher", "unencrypted-srtp"],
)
def test_offers_that_are_not_secure_get_488(proto: str, suite: str | None, params: tuple) -> None:
    crypto = CryptoAttribute.generate(1, suite, session_params=params) if suite else None

    async def main() -> Response:
        raw = await focus(False).handle(invite(offer_sdp(4000, proto=proto, crypto=crypto)))
        assert raw is not None
        return parse_message(raw)  # type: ignore[return-value]

    response = asyncio.run(main())
    assert isinstance(response, Response)
    assert response.status == 488


@pytest.mark.parametrize("suite", SUITES)
def test_bad_tag_focus_answers_properly_and_sends_under_its_announced_key(suite: str) -> None:
    """200 OK with ;isfocus and an SDES answer on a bound port; after the ACK, packets reach
    the offered port that fail authentication under the answer's key and pass once the two
    flipped octets are flipped back; BYE stops them."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class Sink(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
                got.put_nowait(data)

        ours, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
        f = focus(True)
        try:
            offered = CryptoAttribute.generate(7, suite)
            req = invite(offer_sdp(ours.get_extra_info("sockname")[1], crypto=offered))
            raw = await f.handle(req)
            assert raw is not None
            response = parse_message(raw)
            assert isinstance(response, Response) and response.status == 200
            contact = parse_name_addr(response.headers.get("Contact") or "")
            assert "isfocus" in contact.params
            assert parse_uri(contact.uri).scheme == "sips"
            assert contact.uri.split(";")[0] != FACTORY
            (m,) = parse_sdp(response.body).media
            assert (m.connection_address, m.proto) == ("127.0.0.1", "RTP/SAVP")
            (answer,) = m.crypto
            assert (answer.tag, answer.suite) == (7, suite)
            assert answer.key != offered.key
            # The answer's port is bound: a datagram sent there is not refused.
            ours.sendto(b"\x80" + bytes(40), ("127.0.0.1", m.port))
            assert got.empty(), "nothing is sent before the ACK"

            await f.handle(invite(b"", method="ACK"))
            ledger = KeyStreamLedger()
            rx = new_receiver(
                ledger, StreamId("a", "f", "audio", "recv"), suite, answer.key, answer.salt
            )
            for _ in range(5):
                packet = await asyncio.wait_for(got.get(), 2.0)
                assert rx.try_unprotect(packet) is None
                assert rx.last_status == AUTH_FAILED
                assert rx.try_unprotect(corrupt_tag(packet)) is not None
            assert f.packets_sent >= 5

            bye = await f.handle(invite(b"", method="BYE", cseq=2))
            assert bye is not None and b" 200 " in bye.split(b"\r\n", 1)[0]
            sent = f.packets_sent
            await asyncio.sleep(0.1)  # two packet intervals: a sender still running would send
            assert f.packets_sent == sent
        finally:
            ours.close()

    asyncio.run(asyncio.wait_for(main(), 10))
