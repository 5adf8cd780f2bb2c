"""Offers a participant makes inside its dialog with the focus: re-INVITE (RFC 3261 section 14)
and UPDATE (RFC 3311), held to the same secure policy as the INVITE that admitted it (R3).

TR 33.829 5.1.3 wants every participant of a secure conference to use media protection for as
long as it takes part. A policy checked only on the dialog-creating INVITE would let an admitted
participant move its leg to RTP/AVP or a null cipher with one re-INVITE, so every offer of the
dialog's life is judged by the focus's own decision (`Focus._decide`, i.e.
`policy.evaluate_offer` with the suites the focus allows). One it refuses gets 488 Not
Acceptable Here (RFC 3261 section 14.2, RFC 4568 section 7.1.2) and nothing else happens: the
mixer keeps the keys it has, the focus keeps the description it sent last, and the dialog goes
on (RFC 3261 section 14.1: a failed re-INVITE leaves the session unchanged).

A secure re-offer is answered as the join was: for every stream a fresh sending key and SSRC
from the `KeyManager` (never a key it has seen, the participant's new one included), the
participant's offered key as the mixer's receive key, both installed through
`MixerControl.install`, the one focus -> mixer key interface (O1), whose mixer records them in
its ledger. The answer keeps the previous m-lines in place (RFC 3264 section 8): the common
stream keeps the conference's current group key (changing it is the rekeyer's business), BFCP
and rejected lines are repeated, a line added at the end is rejected with port 0.

The focus also sends re-INVITEs of its own (rekeying, `rekey.py`). While one awaits its answer
in the same dialog the participant's offer gets 491 Request Pending (RFC 3261 section 14.2,
RFC 3311 section 5.2), and the participant retries later. An UPDATE without a body changes no
session (a target refresh, RFC 3311 section 5.2) and gets 200. A re-INVITE without an offer is
refused with 488 like one without SDP at admission: this focus does not make offers in a 2xx.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from confsec.codec.sdp import SRTP_SUITES, MediaDescription, SessionDescription
from confsec.reference.keys import KeyManager
from confsec.reference.mixer_control import (
    COMMON_MEDIA,
    LegSetup,
    MixerControl,
    SrtpKeys,
    StreamSetup,
)
from confsec.reference.model import Conference, Leg
from confsec.reference.policy import (
    SUPPORTED_MEDIA,
    MediaChoice,
    PolicyDecision,
    evaluate_offer,
    reoffer_refusal,
)
from confsec.reference.rekey import Rekeyer, common_answer_line

if TYPE_CHECKING:
    from confsec.net.incoming import IncomingRequest

log = logging.getLogger(__name__)

ReadOffer = Callable[["IncomingRequest"], Awaitable[SessionDescription | None]]
"""`Focus._offer`: the request's offer, or None once it answered why there is none (488, 400)."""
Decide = Callable[..., PolicyDecision]
"""`Focus._decide(offer, secure=..., joining=...)`: the focus's policy with its defect switches."""


class _Refused(Exception):
    """An offer the answer cannot be built for: 488 with this reason."""


class Reoffers:
    """Answers the in-dialog offers of one focus's participants."""

    def __init__(
        self,
        keys: KeyManager,
        rekey: Rekeyer,
        mixer: Callable[[], MixerControl],
        read_offer: ReadOffer,
        decide: Decide,
        domain: str,
        defects: frozenset[str] = frozenset(),
    ):
        self.keys = keys
        self.rekey = rekey
        self.mixer = mixer
        """The focus's current key interface (looked up at every install, as the rekeyer does:
        the deployment swaps in the O1 key channel after the focus is built)."""
        self.read_offer = read_offer
        self.decide = decide
        self.domain = domain
        self.defects = defects

    async def handle(self, req: IncomingRequest, conf: Conference, leg: Leg, contact: str) -> None:
        """Answer a re-INVITE or UPDATE in `leg`'s dialog. `contact` is the Contact the focus
        answered the join with: a 2xx to either refreshes the peer's remote target (RFC 3261
        12.2.1.2, RFC 3311 5.2), which must stay the conference URI (RFC 4579)."""
        if req.method == "UPDATE" and not req.request.body:
            await req.respond(200, contact=contact)
            return
        session = self.rekey.session(conf.conference_id, leg.leg_id)
        if session is None:  # the leg is leaving: its session is gone already
            await req.respond(481, "Leg No Longer In The Conference")
            return
        if self.rekey.offering(conf.conference_id, leg.leg_id):
            await req.respond(491, "Request Pending")
            return
        offer = await self.read_offer(req)
        if offer is None:
            return
        previous, streams = session
        decision = reoffer_refusal(previous, offer) or self._decide(offer, conf.secure)
        if not decision.accepted:
            self._refuse(req, leg, decision.status, decision.reason)
            return
        try:
            answer, new_streams = self._answer(req, conf, leg, previous, streams, offer, decision)
        except _Refused as exc:
            self._refuse(req, leg, 488, str(exc))
            return
        # Answer first, then install: the participant must not get packets under the focus's
        # new key before the answer that carries it (RFC 3264 section 8).
        await req.respond(
            200, body=answer.to_bytes(), content_type="application/sdp", contact=contact
        )
        if not req.final_sent:  # the connection went: the participant never got the answer
            return
        self.mixer().install(LegSetup(conf.conference_id, leg.leg_id, tuple(new_streams)))
        self.rekey.renegotiated(conf.conference_id, leg.leg_id, answer, new_streams)
        log.info("%s of %s answered with new keys", req.method, leg.leg_id)

    def _decide(self, offer: SessionDescription, secure: bool) -> PolicyDecision:
        if "reoffer-policy-not-applied" in self.defects:
            # The defect: the policy was written for the INVITE that admits a participant, and
            # the re-INVITE path takes whatever the offer names, RTP/AVP and null ciphers too.
            return evaluate_offer(
                offer, require_srtp=False, allow_null_cipher=True, suites=tuple(SRTP_SUITES)
            )
        return self.decide(offer, secure=secure, joining=True)

    def _refuse(self, req: IncomingRequest, leg: Leg, status: int, reason: str) -> None:
        log.info("%s of %s refused: %s", req.method, leg.leg_id, reason)
        req.respond_now(status, reason[:120])

    def _answer(
        self,
        req: IncomingRequest,
        conf: Conference,
        leg: Leg,
        previous: SessionDescription,
        streams: list[StreamSetup],
        offer: SessionDescription,
        decision: PolicyDecision,
    ) -> tuple[SessionDescription, list[StreamSetup]]:
        """The answer, m-line by m-line in the previous description's places, and the streams
        to install (in the order of the previous keyed lines, as the rekeyer keeps them)."""
        chosen = {c.index: c for c in decision.choices}
        installed = iter(streams)
        media: list[MediaDescription] = []
        new_streams: list[StreamSetup] = []
        for index, m in enumerate(offer.media):
            old = previous.media[index] if index < len(previous.media) else None
            if old is None:  # a stream added at the end: rejected (RFC 3264 section 6)
                media.append(
                    MediaDescription.build(m.media, port=0, proto=m.proto, formats=m.formats)
                )
                continue
            if old.port == 0 or "RTP" not in old.proto:
                media.append(_repeated(old))  # rejected before, or BFCP: as it was
                continue
            s = next(installed, None)
            if s is None:
                raise _Refused("the session has no stream for this m-line")
            remote = (m.connection_address or req.flow.remote[0], m.port)
            if s.media == COMMON_MEDIA:
                line = old if s.tx is None else common_answer_line(m, old.port, s.tx, s.tx_ssrc)
                media.append(line)
                new_streams.append(replace(s, remote=remote))
                continue
            choice = chosen.get(index)
            if choice is None:
                raise _Refused(f"m={m.media} is not offered in a form the focus can answer")
            line, stream = self._stream(conf, leg, m, old, s, choice, remote)
            media.append(line)
            new_streams.append(stream)
        return previous.with_media(media).with_next_version(), new_streams

    def _stream(
        self,
        conf: Conference,
        leg: Leg,
        m: MediaDescription,
        old: MediaDescription,
        s: StreamSetup,
        choice: MediaChoice,
        remote: tuple[str, int],
    ) -> tuple[MediaDescription, StreamSetup]:
        """One unicast stream: a fresh sending key of the focus's for the participant's new one."""
        pt = SUPPORTED_MEDIA[m.media]
        attrs: list[tuple[str, str | None]] = [("sendrecv", None)]
        own_rtcp = next((v for n, v in old.attributes if n == "rtcp"), None)
        if m.rtcp_mux:
            attrs.append(("rtcp-mux", None))
        elif own_rtcp is not None:
            attrs.append(("rtcp", own_rtcp))  # the mixer's RTCP port stays
        rtcp_remote = None if m.rtcp_mux else m.rtcp_address(remote[0])
        rx: SrtpKeys | None = None
        tx: SrtpKeys | None = None
        if choice.crypto is not None and conf.secure:
            self.keys.note_offered(choice.crypto)
            issued = self.keys.issue(
                conf.conference_id, leg.leg_id, m.media, choice.crypto, _offered_ssrc(m)
            )
            crypto = issued.answer
            if choice.crypto.is_null:
                # Reached only with the defect switch: the null offer is agreed to as it is,
                # and the leg is left without protection (the mixer has no null cipher).
                kept = tuple(p for p in choice.crypto.session_params if p.startswith("UNENC"))
                crypto = replace(crypto, session_params=kept)
            else:
                rx, tx = SrtpKeys.from_crypto(choice.crypto), issued.tx
            attrs.insert(0, ("crypto", crypto.to_value()))
            attrs.append(("ssrc", f"{issued.tx_ssrc} cname:focus@{self.domain}"))
            ssrc, proto = issued.tx_ssrc, m.proto
        else:
            ssrc, proto = secrets.randbits(32), "RTP/AVP"
        line = MediaDescription.build(
            m.media, port=old.port, proto=proto, formats=[pt], attributes=attrs
        )
        return line, replace(
            s,
            payload_type=int(pt),
            remote=remote,
            rx=rx,
            tx=tx,
            tx_ssrc=ssrc,
            rtcp_remote=rtcp_remote,
        )


def _repeated(old: MediaDescription) -> MediaDescription:
    """A line the re-offer does not change, as the focus sent it last. A BFCP line keeps its TCP
    connection (RFC 4145 section 5: `a=connection:existing`)."""
    if not any(n == "connection" for n, _ in old.attributes):
        return old
    attrs = [(n, "existing" if n == "connection" else v) for n, v in old.attributes]
    return old.with_attributes(attrs)


def _offered_ssrc(m: MediaDescription) -> int | None:
    for name, value in m.attributes:
        if name == "ssrc" and value:
            try:
                return int(value.split()[0])
            except ValueError:
                return None
    return None
