"""An admitted participant's own offers in its dialog with the focus (re-INVITE, RFC 3261
section 14; UPDATE, RFC 3311), and whether the secure policy holds on them (R3).

All participants of a secure conference use media protection for as long as they take part
(TR 33.829 5.1.3), so a re-offer of plain RTP or of a null cipher must be refused with 488 (RFC
3261 section 14.2, RFC 4568 section 7.1.2), and the dialog and the session then stay as they
were (RFC 3261 section 14.1). The suite does not take the refusal's word for it: the participant
stays on its keys whatever the answer, and every packet it receives afterwards is judged by
trial decryption under the key the focus sent with before the offer, while the others must go
on hearing it (which they can only if the focus still takes its packets under its old key).

Every such check rests on a positive control made first in the same scenario (`control`): a
legitimate re-INVITE offering a new SDES key for every stream, answered 200 with a fresh key of
the focus's, after which one window of media must run under the new keys both ways. A target
that refuses or mishandles even that makes the negative check inconclusive, never a pass.

This module drives (`Reoffers`, one per scenario, with a synchronous face for the steps); the
judging, pure functions over what it recorded, is `confsec.behaviour.reoffer_checks`. The
offers repeat the participant's own m-lines with its media ports and SSRCs, and any other line
of its last offer (BFCP) as it was (RFC 3264 section 8).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import TYPE_CHECKING

from confsec.behaviour.participant import (
    COMMON,
    OfferSpec,
    Participant,
    RekeyRecord,
    send_in_dialog,
    stream_kind,
    stream_label,
)
from confsec.behaviour.reoffer_checks import (
    InDialogOffer,
    Window,
    control_moved_keys,
    secure_answer,
    unique,
    usable,
)
from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.codec.sip import Request, Response
from confsec.errors import ConfsecError
from confsec.media.ledger import StreamId
from confsec.media.srtp import new_receiver, new_sender
from confsec.observed import Evidence

if TYPE_CHECKING:
    from confsec.behaviour.conference import ConferenceRun

__all__ = ["Reoffers", "offer_sdp", "switch_keys"]

METHODS = {"re-INVITE": "INVITE", "UPDATE": "UPDATE"}
"""The methods as the features name them -> the SIP method."""
GLARE_WAIT_S = (2.1, 4.0)
"""RFC 3261 section 14.1: after a 491 the owner of the Call-ID (the participant, who sent the
INVITE that made the dialog) retries after a random 2.1 to 4 s."""


class Reoffers:
    """The in-dialog offers of one scenario's participants."""

    def __init__(self, conf: ConferenceRun) -> None:
        self.conf = conf
        self.control_offer: InDialogOffer | None = None
        self.control_window: Window | None = None
        self.control_evidence: Evidence | None = None
        """Set when the control passed: every negative check of the scenario names it."""
        self.last: InDialogOffer | None = None

    # -- sync face for the steps ---------------------------------------------------------------

    def control(self, name: str, seconds: float = 1.0, method: str = "re-INVITE") -> Evidence:
        """The positive control: `name` re-keys its session with a legitimate re-INVITE (or
        UPDATE); when it is answered 200 the participant moves to the new keys and everyone
        sends for `seconds`. Raises Inconclusive unless both directions then ran under the new
        keys."""
        p = self.conf.participant(name)
        sent = p.send_crypto.get("audio") or next(iter(p.send_crypto.values()), None)
        spec = OfferSpec(suite=sent.suite if sent else OfferSpec().suite)
        offer = self._send(p, method, spec, "a new SDES key", apply=True)
        self.control_offer = offer
        if offer.accepted and offer.answer is not None:
            self.control_window = self._window(seconds)
        others = [o for o in self.conf.participants.values() if o is not p]
        self.control_evidence = control_moved_keys(offer, self.control_window, p, others)
        return self.control_evidence

    def offer(self, name: str, method: str, what: str) -> InDialogOffer:
        """`name` offers `what` ('plain RTP', a null suite, 'UNENCRYPTED_SRTP') in a `method`
        in its dialog, and stays on its keys whatever the answer. After a refusal an in-dialog
        OPTIONS asks whether the focus still knows the dialog."""
        p = self.conf.participant(name)
        offer = self._send(p, method, OfferSpec.named(what), what, apply=False)
        self.last = offer
        return offer

    def judged(self) -> InDialogOffer | None:
        """The last offer, with the dialog's state as it is now."""
        offer = self.last
        if offer is not None:
            p = self.conf.participants.get(offer.name)
            if p is not None and p.dialog is not None and p.dialog.is_terminated:
                offer.dialog_ended = p.dialog.termination_reason or "ended"
        return offer

    # -- the work ------------------------------------------------------------------------------

    def _send(
        self, p: Participant, method: str, spec: OfferSpec, what: str, *, apply: bool
    ) -> InDialogOffer:
        t = self.conf.target.timeouts.transaction
        return self.conf.runtime.run(
            self._offer(p, method, spec, what, apply),
            2 * t + GLARE_WAIT_S[1] + t + 5,
            f"{p.name}'s {method}",
        )

    def _window(self, seconds: float) -> Window:
        window = Window(self.conf.runtime.punctuality.now())
        self.conf.exchange_media(seconds)
        window.sent = dict(self.conf.last_exchange_sent)
        return window

    async def _offer(
        self, p: Participant, method: str, spec: OfferSpec, what: str, apply: bool
    ) -> InDialogOffer:
        loop = asyncio.get_running_loop()
        offer = InDialogOffer(p.name, method, what)
        current = p.rekeys[-1].recv_keys if p.rekeys else {}
        offer.recv_before = dict(current)
        offer.held_before = unique([k for r in p.rekeys for k in r.recv_keys.values()])
        sdp, offer.offered = offer_sdp(p, spec)
        timeout = self.conf.target.timeouts.transaction
        response: Response | None = None
        for attempt in (1, 2):
            try:
                response = await send_in_dialog(p, METHODS[method], sdp, timeout)
            except ConfsecError as exc:
                offer.error = f"no final response: {exc}"
                return offer
            if response.status != 491 or attempt == 2:
                break
            offer.glare += 1
            wait = random.uniform(*GLARE_WAIT_S)
            self.conf.count_window("glare_backoff", wait)
            await asyncio.sleep(wait)
        assert response is not None
        offer.status, offer.reason = response.status, response.reason
        offer.answered_at = loop.time()
        if offer.accepted and response.body:
            try:
                offer.answer = parse_sdp(response.body)
            except SdpParseError as exc:
                offer.error = f"the answer is not valid SDP: {exc}"
        if apply and offer.answer is not None and secure_answer(offer):
            switch_keys(p, offer, loop.time())
        if not offer.accepted and p.dialog is not None and not p.dialog.is_terminated:
            try:
                probe = await p.dialog.request("OPTIONS", timeout=timeout)
                offer.probe_status = probe.status
            except ConfsecError:
                offer.probe_status = None  # no answer: the media checks still judge the session
        return offer


# -- the participant's side --------------------------------------------------------------------


def offer_sdp(p: Participant, spec: OfferSpec) -> tuple[bytes, dict[str, CryptoAttribute]]:
    """A new offer of `p`'s session: its last offer's m-lines in their places (RFC 3264 section
    8), each of its media legs with the same port and SSRC and, for a secure `spec`, a fresh key;
    other lines (BFCP) as they were; the o= line's version one up."""
    last = _last_local_sdp(p)
    lines = list(last.media) if last is not None else []
    if not lines:
        lines = [
            MediaDescription.build("audio", port=9).with_attribute("label", COMMON)
            if k == COMMON
            else MediaDescription.build(k, port=9, formats=["0"])
            for k in p.legs
        ]
    offered: dict[str, CryptoAttribute] = {}
    media = []
    for tag, m in enumerate(lines, start=1):
        kind = stream_kind(m) if m.port != 0 else ""
        leg = p.legs.get(kind)
        if leg is None or leg.closed:
            media.append(m)
            continue
        attrs: list[tuple[str, str | None]] = []
        if spec.secure:
            crypto = CryptoAttribute.generate(tag, spec.suite)
            if spec.session_params:
                crypto = replace(crypto, session_params=spec.session_params)
            offered[kind] = crypto
            attrs.append(("crypto", crypto.to_value()))
        if kind == COMMON:
            attrs += [("recvonly", None), ("label", COMMON)]
        else:
            attrs += [("sendrecv", None), ("ssrc", f"{p.ssrcs[kind]} cname:{p.name}@confsec")]
        proto = "RTP/SAVP" if spec.secure else "RTP/AVP"
        media.append(
            MediaDescription.build(
                m.media, port=leg.local_addr[1], proto=proto, formats=m.formats, attributes=attrs
            )
        )
    if last is None:
        sdp = SessionDescription.build(p.name, "127.0.0.1", media=media)
    else:
        sdp = last.with_media(media).with_next_version()
    return sdp.to_bytes(), offered


def _last_local_sdp(p: Participant) -> SessionDescription | None:
    """The last SDP `p` sent in its dialog (its INVITE, its answers to the focus's re-INVITEs,
    its own re-offers), from its UA's trace."""
    if p.dialog is None:
        return None
    for entry in reversed(p.ua.trace):
        msg = entry.message
        if entry.direction != "sent" or not isinstance(msg, Request | Response) or not msg.body:
            continue
        try:
            if msg.call_id != p.dialog.call_id:
                continue
            if isinstance(msg, Response) and not 200 <= msg.status < 300:
                continue
            return parse_sdp(msg.body)
        except ConfsecError:
            continue
    return None


def switch_keys(p: Participant, offer: InDialogOffer, now: float) -> None:
    """An accepted secure re-offer: send under the key offered, receive under the answer's
    (the previous receiver kept for packets sent before the switch), as one more `RekeyRecord`."""
    assert offer.answer is not None
    record = RekeyRecord(len(p.rekeys) + 1, now, dict(offer.recv_before))
    label = f"reoffer-{record.epoch}"
    changed = []
    for m in offer.answer.media:
        kind = stream_kind(m)
        leg = p.legs.get(kind)
        crypto = usable(m)
        if leg is None or m.port == 0 or crypto is None:
            continue
        leg.set_remote((m.connection_address or p.target.host, m.port))
        mine = offer.offered.get(kind)
        if kind != COMMON and mine is not None:
            sid = StreamId(p.name, "focus", m.media, "send", label)
            leg.replace_sender(new_sender(p.ledger, sid, mine.suite, mine.key, mine.salt))
            p.send_crypto[kind] = mine
        key = (crypto.suite, crypto.key, crypto.salt)
        if record.recv_keys.get(kind) != key:
            sid = StreamId(p.name, "focus", m.media, "recv", f"{stream_label(m)} {label}".strip())
            leg.set_receiver(new_receiver(p.ledger, sid, *key), keep_previous=True)
            record.recv_keys[kind] = key
            changed.append(kind)
        offer.answer_keys[kind] = key
    record.changed = tuple(changed)
    p.rekeys.append(record)
