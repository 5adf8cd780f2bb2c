"""A focus that is correct in signalling and hostile in media: the `srtp-*` hostile modes.

`SrtpFocus` serves one SIP/TLS connection of `HostileServer`. It frames requests with the
confsec codec (`SipStream`), answers them with `make_response`, and answers an SDES offer as a
conformant focus would (RFC 3264, RFC 4568, RFC 4579): 200 OK with `Contact: <conference
URI>;isfocus`, `c=127.0.0.1`, one m= line per offered medium on a UDP port it has really bound,
the first acceptable offered suite with a fresh key of the right length; 488 to plain RTP
(RTP/AVP) and to null suites (NULL_*, UNENCRYPTED_SRTP). What it does with media is the hostile
part:

- `send_media=False` (`srtp-silent`): nothing is ever sent, so a check has nothing to judge;
- `accept_all=True` (`accept-all-silent`): every INVITE, plain RTP and null ciphers included,
  gets 200 OK with a valid SDES answer (AES_CM_128_HMAC_SHA1_80 where the offer had no usable
  key), every other request 200 OK, and no media is ever sent: a target that says yes to
  everything and does nothing;
- `send_media=True` (`srtp-bad-tag`): after the ACK, 50 SRTP packets per second go to each
  participant's offered address, a PCMU tone protected with the key of the answer by
  `confsec.media.srtp`, whose last two octets (inside the tag for every suite: 4, 10 or 16
  octets) are flipped, so that no packet authenticates. The tone is the mix of the other
  participants' tones (what a mix-minus would carry), so a suite that decoded unauthenticated
  packets would "hear" them.

Incoming media is read and dropped. Sending stops on BYE, a re-INVITE (which starts over with a
new key) or the end of the connection.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from confsec.behaviour.conference import PARTICIPANT_ORDER
from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.codec.sip import (
    Request,
    SipParseError,
    SipStream,
    make_response,
    parse_name_addr,
    parse_uri,
)
from confsec.errors import ConfsecError
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import PROFILES, new_sender
from confsec.media.tone import ToneGenerator, tone_for

__all__ = ["PACKET_INTERVAL", "SrtpFocus", "corrupt_tag"]

PACKET_INTERVAL = 0.020  # 50 packets per second, 20 ms of PCMU each
_ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


def corrupt_tag(packet: bytes) -> bytes:
    """Flip every bit of the last two octets: inside the tag of every suite (4, 10, 16 octets)."""
    return packet[:-2] + bytes(b ^ 0xFF for b in packet[-2:])


def acceptable_crypto(m: MediaDescription) -> CryptoAttribute | None:
    """The first offered a=crypto a secure focus may accept: a suite confsec.media.srtp runs
    (so never a NULL cipher), without UNENCRYPTED_SRTP/SRTCP; None when there is none."""
    if m.proto != "RTP/SAVP":
        return None
    try:
        offered = m.crypto
    except SdpParseError:
        return None
    return next((c for c in offered if c.suite in PROFILES and not c.is_null), None)


@dataclass
class _MediaLeg:
    """One answered medium: our bound socket, the participant's address, the key we announced."""

    media: str
    payload_type: int
    remote: tuple[str, int]
    crypto: CryptoAttribute
    transport: asyncio.DatagramTransport
    task: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.transport.close()


@dataclass
class _Call:
    """One dialog (keyed by Call-ID: each participant's UA has its own connection anyway)."""

    to_tag: str
    contact: str
    participant: str
    legs: list[_MediaLeg] = field(default_factory=list)
    started: bool = False

    def close(self) -> None:
        for leg in self.legs:
            leg.close()
        self.legs.clear()
        self.started = False


class SrtpFocus:
    """Serves one connection; `serve()` returns when the peer closes or sends non-SIP."""

    def __init__(
        self,
        domain: str,
        *,
        send_media: bool,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        record: Callable[[bytes], None],
        accept_all: bool = False,
    ) -> None:
        self.domain = domain
        self.send_media = send_media
        self.accept_all = accept_all
        self._spawn = spawn
        self._record = record
        self._calls: dict[str, _Call] = {}
        self._ledger = KeyStreamLedger()
        self.packets_sent = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = SipStream()
        try:
            while data := await reader.read(65536):
                stream.feed(data)
                while (msg := stream.next_message()) is not None:
                    if not isinstance(msg, Request):
                        continue  # no client transactions here: a stray response is dropped
                    self._record(msg.raw or msg.to_bytes())
                    response = await self.handle(msg)
                    if response is not None:
                        writer.write(response)
                        await writer.drain()
        except SipParseError:
            pass  # framing is lost; the caller aborts the connection
        finally:
            for call in self._calls.values():
                call.close()
            self._calls.clear()

    async def handle(self, req: Request) -> bytes | None:
        """One request in, the response to send back out (None for an ACK)."""
        call = self._calls.get(req.call_id)
        if req.method == "ACK":
            if call is not None and self.send_media and not call.started:
                call.started = True
                for leg in call.legs:
                    leg.task = self._spawn(self._send_bad_srtp(leg, call.participant))
            return None
        if req.method == "INVITE":
            return await self._invite(req, call)
        if req.method == "BYE":
            if call is None:
                return make_response(req, 481).to_bytes()
            call.close()
            del self._calls[req.call_id]
            return make_response(req, 200).to_bytes()
        if req.method in ("OPTIONS", "CANCEL") or self.accept_all:
            return make_response(req, 200, headers=[("Allow", _ALLOW)]).to_bytes()
        return make_response(req, 405, headers=[("Allow", _ALLOW)]).to_bytes()

    async def _invite(self, req: Request, call: _Call | None) -> bytes:
        """A first INVITE or a re-INVITE: the answer, or 488 for an offer that is not secure."""
        try:
            offer = parse_sdp(req.body)
        except SdpParseError:
            return make_response(req, 488, headers=[("Warning", '399 - "bad SDP"')]).to_bytes()
        chosen = [(m, acceptable_crypto(m)) for m in offer.media if m.port != 0]
        if self.accept_all:  # yes to everything: a made-up key where the offer had none
            chosen = [
                (m, c or CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80")) for m, c in chosen
            ]
        if not chosen or any(c is None for _, c in chosen):
            warning = '305 - "plain RTP and null ciphers are not accepted"'
            return make_response(req, 488, headers=[("Warning", warning)]).to_bytes()
        if call is None:
            call = _Call(secrets.token_hex(4), self._contact(req.uri), _user(req))
        call.close()  # a re-INVITE starts over with fresh keys and sockets
        try:
            media = [await self._open_leg(call, m, c, offer) for m, c in chosen if c is not None]
        except (OSError, ConfsecError):
            call.close()
            return make_response(req, 500).to_bytes()
        self._calls[req.call_id] = call
        answer = SessionDescription.build("focus", "127.0.0.1", media=media).to_bytes()
        return make_response(
            req,
            200,
            to_tag=call.to_tag,
            headers=[
                ("Contact", f"<{call.contact}>;isfocus"),
                ("Allow", _ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=answer,
        ).to_bytes()

    async def _open_leg(
        self,
        call: _Call,
        m: MediaDescription,
        offered: CryptoAttribute,
        offer: SessionDescription,
    ) -> MediaDescription:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        ours = CryptoAttribute.generate(offered.tag, offered.suite)
        pt = int(m.formats[0]) if m.formats[0].isdigit() else 0
        remote = (m.connection_address or "127.0.0.1", m.port)
        call.legs.append(_MediaLeg(m.media, pt, remote, ours, transport))
        return MediaDescription.build(
            m.media,
            port=transport.get_extra_info("sockname")[1],
            proto="RTP/SAVP",
            formats=[m.formats[0]],
            attributes=[("crypto", ours.to_value()), ("sendrecv", None)],
        )

    def _contact(self, request_uri: str) -> str:
        """A fresh conference URI for the factory; a conference URI answers as itself."""
        uri = request_uri.split(";")[0]
        if parse_uri(uri).user not in (None, "conf-factory"):
            return f"{uri};transport=tls"
        return f"sips:conf-{secrets.token_hex(4)}@{self.domain};transport=tls"

    async def _send_bad_srtp(self, leg: _MediaLeg, participant: str) -> None:
        """50 packets/s of tone, SRTP under the announced key, every tag corrupted."""
        sender = new_sender(
            self._ledger,
            StreamId("hostile-focus", participant, leg.media, "send"),
            leg.crypto.suite,
            leg.crypto.key,
            leg.crypto.salt,
        )
        others = [tone_for(i) for i, n in enumerate(PARTICIPANT_ORDER[:3]) if n != participant]
        tone = ToneGenerator(others)
        ssrc = secrets.randbits(32) | 1
        seq0, ts0 = secrets.randbits(16), secrets.randbits(32)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in itertools.count():
            payload = next(tone) if leg.payload_type == 0 else os.urandom(160)
            rtp = build_rtp(leg.payload_type, seq0 + n, ts0 + 160 * n, ssrc, payload, n == 0)
            leg.transport.sendto(corrupt_tag(sender.protect(rtp)), leg.remote)
            self.packets_sent += 1
            # Paced against the start, so that load does not slow the rate down.
            await asyncio.sleep(max(0.0, start + (n + 1) * PACKET_INTERVAL - loop.time()))


def _user(req: Request) -> str:
    try:
        return parse_uri(parse_name_addr(req.headers.get("From") or "").uri).user or "?"
    except ConfsecError:
        return "?"
