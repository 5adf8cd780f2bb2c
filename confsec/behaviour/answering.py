"""Participants the service calls (dial-out, RFC 4579 5.5): they listen, authenticate the service
and answer its offer with keys of their own.

A participant that answers is the mirror of one that calls. It listens over TLS with its own
certificate and asks for the caller's (so the service authenticates itself as a TLS client, R2
in the other direction); it takes the INVITE only if the service's certificate names the
service domain, and only if every offered stream is SRTP (a participant with mandatory SRTP, as
R3 wants every participant to be). It answers with a fresh key of its own per stream; from then
on its media, the ledger and every check work exactly as for a participant that dialled in
(`participant.attach`: the focus's re-INVITEs rekey it the same way).

A participant may also be told to answer plain RTP only (a legacy phone): it refuses an SRTP
offer with 488 and accepts a plain one, which a conformant service never makes.

Every INVITE that reaches a listening participant is an `IncomingCall`, with the flow it came on
and the certificate the service presented: that record is the evidence the dial-out checks
(`dialout_checks.py`) judge, whatever the participant answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confsec.behaviour import rtcp_media
from confsec.behaviour.participant import (
    PAYLOAD_TYPES,
    Participant,
    attach,
    fresh_ssrc,
    stream_kind,
    usable_crypto,
)
from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.errors import RemoteProtocolError
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import StreamId
from confsec.media.srtp import new_receiver, new_sender

if TYPE_CHECKING:
    from confsec.codec.sip import Request
    from confsec.net.flow import Flow
    from confsec.net.incoming import IncomingRequest

SRTP_PROTOS = ("RTP/SAVP", "RTP/SAVPF")
ANSWER_MODES = ("srtp", "plain-only")


@dataclass
class IncomingCall:
    """One INVITE the service sent to a listening participant, and what became of it."""

    invitee: str
    at: float
    """Loop time it arrived."""
    flow: Flow
    request: Request
    offer: SessionDescription | None
    offer_error: str | None
    service_problem: str | None
    """Why the caller is not the authenticated service (None: its certificate names the service
    domain, from the target's CA: the chain was verified in the TLS handshake)."""
    status: int = 0
    """What the participant answered."""
    reason: str = ""

    @property
    def admitted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Answering:
    """What makes a participant one that answers: how it answers, and what reached it."""

    mode: str = "srtp"
    claim: str | None = None
    """An identity its answers claim in P-Asserted-Identity (a check that the service names
    the participant by the address it called, not by what the callee says)."""
    calls: list[IncomingCall] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)
    """Set with every new entry in `calls`."""


def service_problem(flow: Flow, domain: str) -> str | None:
    """Why the party on `flow` is not the service of `domain`, or None when it is (RFC 5922
    7.1: a subjectAltName DNS name or SIP URI of the domain)."""
    if not flow.secure:
        return f"the call came over {flow.transport.upper()}, not TLS"
    try:
        peer = flow.peer_identity
    except RemoteProtocolError as exc:
        return f"the service's certificate cannot be read: {exc}"
    if peer is None:
        return "the service presented no certificate: it did not authenticate itself"
    if domain in peer.dns_names or {f"sip:{domain}", f"sips:{domain}"} & set(peer.uris):
        return None
    names = ", ".join((*peer.dns_names, *peer.uris)) or f"CN={peer.subject_cn}"
    return f"the service presented a certificate for {names}, not for {domain}"


def offer_problems(offer: SessionDescription) -> list[str]:
    """What in the service's offer is not SRTP only: a stream offered as RTP/AVP (with or
    without a=crypto, SRTP as an option is a downgrade), or with no usable key."""
    problems = []
    for m in offer.media:
        if m.port == 0 or m.media not in PAYLOAD_TYPES:
            continue
        if m.proto not in SRTP_PROTOS:
            keyed = " with a=crypto (SRTP as an option)" if _has_crypto(m) else ""
            problems.append(f"{m.media} offered as {m.proto}{keyed}")
        elif usable_crypto(m) is None:
            problems.append(f"{m.media} offered as {m.proto} with no usable a=crypto key")
    return problems


async def take_call(p: Participant, answering: Answering, req: IncomingRequest) -> None:
    """Answer one out-of-dialog INVITE from the service (the listening UA's handler)."""
    call = IncomingCall(
        p.name,
        asyncio.get_running_loop().time(),
        req.flow,
        req.request,
        None,
        None,
        service_problem(req.flow, p.target.domain),
    )
    try:
        call.offer = parse_sdp(req.request.body) if req.request.body else None
        if call.offer is None:
            call.offer_error = "the INVITE carries no SDP offer"
    except SdpParseError as exc:
        call.offer_error = f"the offer is not valid SDP: {exc}"
    answering.calls.append(call)
    try:
        await _answer(p, answering, req, call)
    finally:
        answering.called.set()


async def _answer(p: Participant, answering: Answering, req: IncomingRequest, call: IncomingCall):
    async def refuse(status: int, reason: str) -> None:
        call.status, call.reason = status, reason
        await req.respond(status, reason)

    if call.service_problem is not None:
        await refuse(403, "Service not authenticated")
        return
    if p.dialog is not None and not p.dialog.is_terminated:
        await refuse(486, "Busy Here")
        return
    if call.offer is None:
        await refuse(488 if call.offer_error else 400, "SDP offer required")
        return
    secure = [m for m in call.offer.media if m.port != 0 and m.proto in SRTP_PROTOS]
    if answering.mode == "plain-only" and secure:
        await refuse(488, "Not Acceptable Here")
        return
    if answering.mode == "srtp" and offer_problems(call.offer):
        await refuse(488, "SRTP required")
        return
    answer = await _answer_sdp(p, call.offer, req.flow.remote[0], answering.mode == "srtp")
    headers = [("P-Asserted-Identity", answering.claim)] if answering.claim else []
    dialog = await req.respond(
        200, headers=headers, body=answer.to_bytes(), content_type="application/sdp"
    )
    call.status, call.reason = 200, "OK"
    attach(p, dialog, call.offer)  # the service's offer holds the keys it sends with


async def _answer_sdp(
    p: Participant, offer: SessionDescription, host: str, srtp: bool
) -> SessionDescription:
    """Open a leg per offered medium and answer it: a fresh key of our own under the suite the
    service chose (RFC 4568 7.1.2), or plain RTP for a plain-only participant."""
    await p.close_media()
    media = []
    for m in offer.media:
        kind = stream_kind(m)
        crypto = usable_crypto(m) if srtp else None
        if m.port == 0 or kind not in PAYLOAD_TYPES or (srtp and crypto is None):
            media.append(MediaDescription.build(m.media, port=0, proto=m.proto, formats=m.formats))
            continue
        leg = await MediaLeg.open(host="127.0.0.1", port=0, recent_limit=2000)
        p.legs[kind] = leg
        p.ssrcs[kind] = fresh_ssrc(p.ssrcs.values())
        leg.set_remote((m.connection_address or host, m.port))
        attrs: list[tuple[str, str | None]] = []
        if crypto is not None:
            mine = CryptoAttribute.generate(crypto.tag, crypto.suite)
            p.send_crypto[kind] = mine
            leg.sender = new_sender(
                p.ledger, StreamId(p.name, "focus", m.media, "send"), *_key(mine)
            )
            leg.set_receiver(
                new_receiver(p.ledger, StreamId(p.name, "focus", m.media, "recv"), *_key(crypto))
            )
            attrs.append(("crypto", mine.to_value()))
        else:
            leg.set_receiver(None)  # plain-only: what comes is judged as plain
        attrs += [("sendrecv", None), ("ssrc", f"{p.ssrcs[kind]} cname:{p.name}@confsec")]
        cname = f"{p.name}@confsec"
        attrs += await rtcp_media.answer_attributes(leg, m, host, cname, p.ssrcs[kind])
        proto = m.proto if crypto is not None else "RTP/AVP"
        formats = [str(PAYLOAD_TYPES[kind])]
        media.append(
            MediaDescription.build(
                m.media, port=leg.local_addr[1], proto=proto, formats=formats, attributes=attrs
            )
        )
    return SessionDescription.build(p.name, "127.0.0.1", media=media)


def _key(c: CryptoAttribute) -> tuple[str, bytes, bytes]:
    return c.suite, c.key, c.salt


def _has_crypto(m: MediaDescription) -> bool:
    return any(name == "crypto" for name, _ in m.attributes)
