"""Conferences that call their participants: REFER to the focus and dial-out (RFC 4579 5.5 and
5.7, RFC 3515, TS 24.147 5.3.1.5).

A member of a conference asks the focus to add a user with a REFER to the conference URI
(`Refer-To: <sips:bob@domain>`), or to remove one (`Refer-To: <sips:bob@domain;method=BYE>`).
The focus accepts with 202, reports progress in the REFER's implicit subscription (NOTIFY with a
`message/sipfrag` body, over the TLS connection the REFER came on, never to the Contact), and
calls the user at the contact it registered (`registrar.py`).

The call is held to the conference's policy exactly as a dial-in is: the focus offers SRTP only
(RTP/SAVP with its own fresh key per stream), presents the service certificate as a TLS client,
checks that the callee's certificate names the user it called, and admits the callee only if the
answer keys every stream. An admitted callee is a leg like any other: the mixer, the rekeying
(R6: its join rekeys the others, its removal too) and the event package see no difference, and
the conference state names it by the address of record the focus called, never by what the
callee's answer claims.

Each defect switch of this module is one visible branch, named where it acts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from confsec.codec.sdp import CryptoAttribute, MediaDescription, SdpParseError, parse_sdp
from confsec.codec.sdp import SessionDescription as Sdp
from confsec.codec.sip import SipParseError, parse_name_addr, parse_uri
from confsec.errors import ConfsecError
from confsec.net.dialog import Dialog
from confsec.reference.events import Member
from confsec.reference.mixer_control import RTCP_SUFFIX, LegSetup, SrtpKeys, StreamSetup
from confsec.reference.model import Conference, Leg

if TYPE_CHECKING:
    from confsec.codec.sip import Response
    from confsec.net.flow import Flow
    from confsec.net.incoming import IncomingHandler, IncomingRequest
    from confsec.net.ua import Call, UserAgent
    from confsec.reference.auth import Authenticator
    from confsec.reference.events import ConferenceEvents
    from confsec.reference.keys import KeyManager
    from confsec.reference.mixer_control import MixerControl
    from confsec.reference.registrar import Registrar
    from confsec.reference.rekey import Rekeyer

log = logging.getLogger(__name__)

SIPFRAG = "message/sipfrag;version=2.0"
DIAL_OUT_MEDIA = {"audio": "0", "video": "96"}
"""What the focus offers a callee: the conference's audio and video (no common stream)."""
CALL_TIMEOUT_S = 8.0
NOTIFY_TIMEOUT_S = 4.0


class Focus(Protocol):
    """What dial-out uses of the focus (`focus.Focus`, which owns a `DialOut`): its
    conferences and the services that admit a leg and let it go."""

    defects: frozenset[str]
    auth: Authenticator
    conferences: dict[str, Conference]
    config: Any
    rekey: Rekeyer
    mixer: MixerControl
    keys: KeyManager
    events: ConferenceEvents
    host: str
    port: int

    @property
    def ua(self) -> UserAgent | None: ...

    def in_dialog_handler(self, conf: Conference, leg: Leg, contact: str) -> IncomingHandler: ...

    def leave(self, conf: Conference, leg: Leg) -> None: ...


@dataclass
class ReferSubscription:
    """The implicit subscription a REFER creates (RFC 3515 2.4.4): its dialog and flow."""

    ua: UserAgent
    dialog: Dialog
    flow: Flow
    contact: str | None
    """The Contact of the REFER: where NOTIFYs must *not* be sent unless it is the same TLS
    connection (it may name a plain transport)."""


class DialOut:
    """The focus's REFER handling and the calls it places."""

    def __init__(self, focus: Focus, registrar: Registrar) -> None:
        self.focus = focus
        self.registrar = registrar
        self.defects = focus.defects
        self._tasks: set[asyncio.Task[None]] = set()

    # -- REFER ---------------------------------------------------------------------------------

    async def handle_refer(self, req: IncomingRequest) -> None:
        focus = self.focus
        if not await focus.auth.require_tls(req):
            return
        r = req.request
        if "refer-without-authentication" in self.defects:  # REFER was left outside the auth
            user: str | None = parse_uri(r.from_.uri).user or "anonymous"
        else:
            user = await focus.auth.authenticate(req)
        if user is None:
            return
        try:
            conf = focus.conferences.get(parse_uri(r.uri).user or "")
            refer_to = parse_uri(parse_name_addr(r.headers.get("Refer-To") or "").uri)
        except SipParseError as exc:
            await req.respond(400, f"Bad Refer-To: {exc}"[:120])
            return
        if conf is None:
            await req.respond(404, "No such conference")
            return
        member = any(leg.user == user for leg in conf.legs.values())
        if not member and "refer-from-anyone" not in self.defects:
            await req.respond(403, "Only participants may add or remove participants")
            return
        if refer_to.host != focus.config.domain or not refer_to.user:
            await req.respond(403, "The focus calls users of its own domain only")
            return
        method = (refer_to.params.get("method") or "INVITE").upper()
        if method not in ("INVITE", "BYE"):
            await req.respond(501, f"Refer-To method {method} not supported")
            return
        contact = r.headers.get("Contact")
        local = req.flow.local
        await req.respond(
            202, headers=[("Contact", f"<sips:{conf.conference_id}@{local[0]}:{local[1]}>")]
        )
        dialog = Dialog.uas(
            req.ua,  # type: ignore[arg-type]
            r,
            req.flow,
            local_tag=req.to_tag,
            local_seq=secrets.randbelow(2**16) + 1,
            secure=True,
        )
        req.ua.add_dialog(dialog)  # type: ignore[attr-defined]
        sub = ReferSubscription(req.ua, dialog, req.flow, contact)  # type: ignore[arg-type]
        log.info("%s asks to %s %s in %s", user, method, refer_to.user, conf.conference_id)
        self._spawn(self._carry_out(conf, refer_to.user, method, sub))

    async def _carry_out(self, conf: Conference, user: str, method: str, sub: ReferSubscription):
        await self._notify(sub, "SIP/2.0 100 Trying", "active;expires=60")
        try:
            if method == "BYE":
                status, reason = await self.remove(conf, user)
            else:
                status, reason = await self.call(conf, user)
        except ConfsecError as exc:
            log.info("dial-out to %s failed: %s", user, exc)
            status, reason = 500, "Server Internal Error"
        await self._notify(sub, f"SIP/2.0 {status} {reason}", "terminated;reason=noresource")
        sub.ua.forget_dialog(sub.dialog)

    async def _notify(self, sub: ReferSubscription, frag: str, state: str) -> None:
        ua = sub.ua
        flow: Flow | None = sub.flow if ua.transport.is_open(sub.flow) else None
        if "refer-notify-plain" in self.defects and sub.contact:
            _, host, port = ua.destination_for(sub.contact)
            flow = await ua.resolve(("udp", host, port), "")  # the defect: the Contact, plainly
        if flow is None:
            log.info("REFER progress not sent: the referrer's TLS connection is gone")
            return
        request = sub.dialog.build_request(
            "NOTIFY",
            flow,
            cseq=sub.dialog.next_seq(),
            body=(frag + "\r\n").encode(),
            headers=[("Event", "refer"), ("Subscription-State", state)],
            content_type=SIPFRAG,
        )
        try:
            await ua.transactions.start_client(request, flow).wait(NOTIFY_TIMEOUT_S)
        except (ConfsecError, OSError) as exc:
            log.info("REFER NOTIFY failed: %s", exc)

    # -- calling a user ------------------------------------------------------------------------

    async def call(
        self, conf: Conference, user: str, contact: str | None = None
    ) -> tuple[int, str]:
        """Call `user` into `conf` at `contact` (default: the contact it registered); the
        status and reason its REFER's final NOTIFY reports."""
        focus = self.focus
        contact = contact or self.registrar.contact(user)
        if contact is None:
            return 480, "Temporarily Unavailable"
        if any(leg.user == user for leg in conf.legs.values()):
            return 200, "OK"  # already a participant
        cid = conf.conference_id
        leg_id = f"{cid}/{user}/{secrets.token_hex(3)}"
        suite = focus.config.dial_out_suite
        epoch, _, _ = focus.rekey.joining(cid, suite)
        ports = await focus.mixer.allocate(cid, leg_id, tuple(DIAL_OUT_MEDIA))
        tx = {
            kind: focus.keys.issue(cid, leg_id, kind, CryptoAttribute.generate(1, suite), None)
            for kind in DIAL_OUT_MEDIA
        }
        secure = conf.secure
        proto = "RTP/SAVP" if secure else "RTP/AVP"
        if "dial-out-best-effort-srtp" in self.defects:
            proto = "RTP/AVP"  # the defect: SRTP offered as optional (a=crypto in RTP/AVP)
        offer = self._offer(ports, {k: s.answer for k, s in tx.items()} if secure else {}, proto)
        local = focus.host, focus.port
        focus_contact = f"<sips:{cid}@{local[0]}:{local[1]}>;isfocus"
        call = await self._invite(contact, user, offer, focus_contact)
        if call is not None and call.response.status == 488 and secure:
            if "dial-out-plain-fallback" in self.defects:  # retry without SRTP: a downgrade
                offer = self._offer(ports, {}, "RTP/AVP")
                call = await self._invite(contact, user, offer, focus_contact)
        if call is None or not 200 <= call.response.status < 300 or call.dialog is None:
            focus.mixer.release(cid, leg_id)
            status = call.response.status if call is not None else 408
            return (status, call.response.reason) if call is not None else (408, "Request Timeout")
        refusal = self._callee_refusal(call, user)
        streams, refused = self._streams(offer, call.response, tx, ports, epoch, call)
        refusal = refusal or refused
        if refusal is not None:
            log.info("dial-out to %s not admitted: %s", user, refusal)
            self._spawn(_bye(call.dialog))
            focus.mixer.release(cid, leg_id)
            return 488 if "SRTP" in refusal else 403, refusal
        focus.mixer.install(LegSetup(cid, leg_id, tuple(streams)))
        leg = Leg(leg_id, user, call.dialog)
        conf.legs[leg_id] = leg
        sdp = _accepted(offer, call.response)
        focus.rekey.admitted(cid, leg_id, user, call.dialog, sdp, streams, epoch, focus_contact)
        focus.events.joined(conf, leg, call.request, self._member(leg, call.response))
        call.dialog.on_request = focus.in_dialog_handler(conf, leg, focus_contact)
        return 200, "OK"

    async def _invite(self, contact: str, user: str, offer: Sdp, focus_contact: str) -> Call | None:
        ua = self.focus.ua
        assert ua is not None
        try:
            return await ua.invite(
                contact,
                offer.to_bytes(),
                to=f"<sips:{user}@{self.focus.config.domain}>",
                headers=[("Contact", focus_contact)],
                authenticate=False,
                timeout=CALL_TIMEOUT_S,
            )
        except ConfsecError as exc:
            log.info("cannot call %s at %s: %s", user, contact, exc)
            return None

    def _offer(
        self, ports: dict[str, tuple[str, int]], keys: dict[str, CryptoAttribute], proto: str
    ) -> Sdp:
        media = []
        for kind, pt in DIAL_OUT_MEDIA.items():
            attrs: list[tuple[str, str | None]] = []
            if kind in keys:
                attrs.append(("crypto", keys[kind].to_value()))
            attrs.append(("sendrecv", None))
            # RTCP: muxed if the callee agrees (RFC 5761), else to the mixer's own RTCP port.
            attrs += [("rtcp-mux", None), ("rtcp", str(ports[kind + RTCP_SUFFIX][1]))]
            media.append(
                MediaDescription.build(
                    kind, port=ports[kind][1], proto=proto, formats=[pt], attributes=attrs
                )
            )
        return Sdp.build("focus", self.focus.host, media=media)

    def _callee_refusal(self, call: Call, user: str) -> str | None:
        """Mutual authentication: the callee's certificate must name the user the focus called
        (RFC 5922 7.1: a SIP URI in subjectAltName)."""
        peer = call.flow.peer_identity if call.flow is not None else None
        domain = self.focus.config.domain
        wanted = {f"sip:{user}@{domain}", f"sips:{user}@{domain}"}
        if peer is None or not wanted & set(peer.uris):
            return "the callee's certificate does not name the user called"
        return None

    def _streams(
        self,
        offer: Sdp,
        response: Response,
        tx: dict,  # type: ignore[type-arg]
        ports: dict[str, tuple[str, int]],
        epoch: int,
        call: Call,
    ) -> tuple[list[StreamSetup], str | None]:
        """The mixer's streams from the callee's answer; a reason when it may not be admitted:
        an offered SRTP stream answered without a key is never taken as plain RTP."""
        try:
            answer = parse_sdp(response.body)
        except SdpParseError as exc:
            return [], f"the answer is not valid SDP: {exc}"
        host = call.flow.remote[0] if call.flow is not None else self.focus.host
        streams = []
        for offered, m in zip(offer.media, answer.media, strict=False):
            if m.port == 0:
                continue
            crypto = next((c for c in m.crypto if not c.is_null and c.is_known), None)
            keyed = any(n == "crypto" for n, _ in offered.attributes)
            if keyed and crypto is None and "dial-out-best-effort-srtp" not in self.defects:
                return [], f"the callee answered {m.media} without SRTP"
            rx = SrtpKeys.from_crypto(crypto) if crypto is not None and keyed else None
            issued = tx[offered.media]
            remote = (m.connection_address or host, m.port)
            pt = int(DIAL_OUT_MEDIA[offered.media])
            send = issued.tx if rx is not None else None
            rtcp_remote = None if m.rtcp_mux else m.rtcp_address(host)
            streams.append(
                StreamSetup(
                    offered.media, pt, remote, rx, send, issued.tx_ssrc, epoch, None, rtcp_remote
                )
            )
        if not streams:
            return [], "the callee accepted no stream"
        return streams, None

    def _member(self, leg: Leg, response: Response) -> Member | None:
        """How the conference state names the callee: by the address of record called. The
        `dial-out-names-claimed-identity` defect takes what the answer claims instead."""
        if "dial-out-names-claimed-identity" not in self.defects:
            return None
        claimed = response.headers.get("P-Asserted-Identity")
        if not claimed:
            return None
        try:
            addr = parse_name_addr(claimed)
        except SipParseError:
            return None
        endpoint = f"sips:{leg.leg_id.rsplit('/', 1)[-1]}@{self.focus.config.domain}"
        return Member(addr.uri, addr.display, endpoint)

    # -- removing a user -----------------------------------------------------------------------

    async def remove(self, conf: Conference, user: str) -> tuple[int, str]:
        """End `user`'s legs in `conf` with a BYE of the focus; the others are rekeyed."""
        legs = [leg for leg in conf.legs.values() if leg.user == user]
        if not legs:
            return 404, "Not a participant"
        for leg in legs:
            if leg.dialog is not None:
                await _bye(leg.dialog)
            if "refer-removal-no-rekey" in self.defects:  # the removal path forgets the rekey
                conf.legs.pop(leg.leg_id, None)
                self.focus.events.left(conf, leg)
                self.focus.mixer.release(conf.conference_id, leg.leg_id)
                continue
            self.focus.leave(conf, leg)
        return 200, "OK"

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _bye(dialog: Dialog) -> None:
    try:
        await dialog.bye(timeout=NOTIFY_TIMEOUT_S)
    except (ConfsecError, OSError) as exc:
        log.info("BYE failed: %s", exc)


def _accepted(offer: Sdp, response: Response) -> Sdp:
    """The focus's offer with the lines the callee rejected set to port 0: what later
    re-INVITEs (rekeys) offer again, line for line."""
    try:
        answer = parse_sdp(response.body)
    except SdpParseError:
        return offer
    media = []
    for i, m in enumerate(offer.media):
        a = answer.media[i] if i < len(answer.media) else None
        if a is None or a.port == 0:
            m = MediaDescription.build(m.media, port=0, proto=m.proto, formats=m.formats)
        media.append(m)
    return offer.with_media(media)
