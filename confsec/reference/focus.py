"""The conference focus of the reference deployment (the AS/MRFC role, RFC 4579 / TS 24.147).

Signalling, policy and key management live here; media lives in the mixer, reached only through
`MixerControl`. An INVITE to the factory URI over SIPS with an SRTP offer creates a conference;
the 200 OK carries the conference URI with `;isfocus`. INVITEs to that URI join it, under the
same secure policy. Every request is authenticated with SIP digest (SHA-256) over TLS by the
`Authenticator` the focus is given (`auth.py`), the same one its event package uses.

`FocusConfig.interop` names relaxations for user agents that cannot meet that (see `INTEROP`);
empty by default, and a focus with any of them on is no longer what R1/R2 require.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confsec.codec.recipient_list import RecipientListError
from confsec.codec.sdp import (
    SRTP_SUITES,
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.codec.sip import SipParseError, parse_uri
from confsec.reference import dtls_keying, leaky
from confsec.reference.auth import MD5_INTEROP, Authenticator
from confsec.reference.dialout import DialOut
from confsec.reference.events import ConferenceEvents
from confsec.reference.keys import KeyManager
from confsec.reference.members import join_refusal, listed_members, offer_body
from confsec.reference.mixer_control import (
    COMMON_MEDIA,
    RTCP_SUFFIX,
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
)
from confsec.reference.registrar import Registrar
from confsec.reference.rekey import DEFAULT_WINDOW_S, Rekeyer, common_answer_line, is_common
from confsec.reference.reoffer import Reoffers

if TYPE_CHECKING:
    from confsec.net.flow import Flow
    from confsec.net.incoming import IncomingRequest
    from confsec.net.ua import UserAgent
    from confsec.reference.floor import FloorServer

log = logging.getLogger(__name__)

SECURE_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM")
NULL_SUITES = ("NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32")
SDES_FALLBACK = "dtls-falls-back-to-sdes"
"""The dtls-srtp mode's defect: an SDES offer is answered with SDES instead of refused."""
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, SUBSCRIBE, UPDATE, REFER, NOTIFY, REGISTER"
#: Interop relaxations, off by default, for UAs such as baresip 1.0 (libre) that cannot join a
#: SIPS-only, SHA-256-only service: the digest ones of `auth.MD5_INTEROP` ("digest-md5",
#: "digest-md5-only"), and
#: - "sip-over-tls": accept a `sip:` Request-URI when the request came over TLS and answer it
#:   with a `sip:...;transport=tls` Contact (RFC 3261 12.1.1 asks for a SIPS Contact only when
#:   the request used a SIPS URI); libre sends in-dialog requests only to `sip:` targets.
INTEROP = MD5_INTEROP | frozenset({"sip-over-tls"})


@dataclass(frozen=True)
class FocusConfig:
    domain: str
    factory_user: str = "conf-factory"
    defects: frozenset[str] = frozenset()
    rekey_window: float = DEFAULT_WINDOW_S  # joins/leaves batched into one rekey (R6, O2)
    interop: frozenset[str] = frozenset()  # relaxations from INTEROP; none by default
    key_management: str = "sdes"
    """'sdes' (a=crypto, RFC 4568) or 'dtls-srtp' (RFC 5763/5764: see dtls_keying.py)."""
    dial_out_suite: str = "AES_CM_128_HMAC_SHA1_80"
    """The SRTP suite of the focus's offers when it calls a user (dialout.py)."""

    @property
    def factory_uri(self) -> str:
        return f"sips:{self.factory_user}@{self.domain}"


class Focus:
    """Handles out-of-dialog requests for the factory URI and the conference URIs."""

    def __init__(self, config: FocusConfig, auth: Authenticator, mixer: MixerControl, host: str):
        self.config = config
        self.defects = config.defects
        self.interop = config.interop
        self.auth = auth
        self.mixer = mixer
        self.host = host
        self.keys = KeyManager(config.defects)
        self.rekey = Rekeyer(
            self.keys, lambda: self.mixer, config.defects, config.rekey_window, host
        )
        self.conferences: dict[str, Conference] = {}
        # The RFC 4575 package (R7): it reads the conferences but never changes them.
        self.events = ConferenceEvents(auth, self.conferences.get, config.domain, config.defects)
        self.floor: FloorServer | None = None  # BFCP (R8), set by the deployment
        # Offers in a participant's dialog (re-INVITE, UPDATE), under the same policy (R3).
        self.reoffers = Reoffers(
            self.keys,
            self.rekey,
            lambda: self.mixer,
            self._offer,
            self._decide,
            config.domain,
            config.defects,
        )
        self._ua: UserAgent | None = None  # the UA the requests come through (`watch`)
        self.port = 0  # the TLS port it listens on (set by the deployment)
        # Users calling in register here; members REFER the focus to call them (dialout.py).
        self.registrar = Registrar(auth)
        self.dialout = DialOut(self, self.registrar)
        if self.defects & leaky.SWITCHES:  # key-confinement defects (reference/leaky.py)
            leaky.serve(self)

    @property
    def ua(self) -> UserAgent | None:
        """The UA the focus serves on (`watch`), which also places its calls (dialout.py)."""
        return self._ua

    # -- malformed input (robustness) ----------------------------------------------------------

    def watch(self, ua: UserAgent) -> None:
        """Serve on `ua`: hear of the malformed requests it refuses itself (they never reach
        `handle`), and hand it to the event notifier, which sends NOTIFYs through it."""
        self._ua = ua
        ua.on_malformed = self._malformed
        self.events.watch(ua)

    def _malformed(self, flow: Flow, why: str) -> None:
        """The UA answered 400 or closed the stream; the conferences are not concerned. With
        `focus-crash-on-malformed-sip` the focus process dies on it and its supervisor restarts
        it: every conference in progress ends and every signalling connection drops."""
        if "focus-crash-on-malformed-sip" not in self.defects:
            log.info("malformed request from %s refused: %s", flow, why)
            return
        log.error("focus crashed on a malformed request from %s (defect switch): %s", flow, why)
        for conf in list(self.conferences.values()):
            for leg in list(conf.legs.values()):
                self.leave(conf, leg)  # all legs go before a rekey round could start
        if self._ua is not None:
            for open_flow in self._ua.transport.connections():
                self._ua.transport.close_flow(open_flow)

    # -- entry point ---------------------------------------------------------------------------

    async def handle(self, req: IncomingRequest) -> None:
        r = req.request
        if r.method == "OPTIONS":
            await req.respond(200, headers=[("Allow", ALLOW)])
            return
        if r.method == "SUBSCRIBE":
            await self.events.handle(req)
            return
        if r.method == "REGISTER":
            await self.registrar.handle(req)
            return
        if r.method == "REFER":
            await self.dialout.handle_refer(req)
            return
        if r.method != "INVITE":
            await req.respond(405, headers=[("Allow", ALLOW)])
            return
        if not await self.auth.require_tls(req):
            return
        if "group-key-to-non-member" in self.defects:
            await self.rekey.leak_to(req)  # the R5 defect: early media before authentication
        user = await self.auth.authenticate(req)
        if user is None:
            return
        try:
            uri = parse_uri(r.uri)
        except SipParseError:
            await req.respond(400, "Bad Request-URI")
            return
        # Over TLS (checked above) the interop profile also takes sip: (RFC 3261 26.2.2).
        sip_ok = uri.scheme == "sip" and "sip-over-tls" in self.interop
        if uri.scheme != "sips" and not sip_ok:
            await req.respond(416, "SIPS URI required")
            return
        if uri.user == self.config.factory_user:
            await self._create(req, user)
        elif uri.user in self.conferences:
            await self._join(req, user, self.conferences[uri.user])
        else:
            await req.respond(404, "No such conference")

    # -- conference life cycle -----------------------------------------------------------------

    async def _create(self, req: IncomingRequest, user: str) -> None:
        offer = await self._offer(req)
        if offer is None:
            return
        # This service hosts secure conferences only: a creation that does not offer SRTP is
        # refused by the policy below rather than turned into an unprotected conference.
        secure = "factory-ignores-secure" not in self.defects
        decision = self._decide(offer, secure=secure, joining=False)
        if not decision.accepted:
            await req.respond(decision.status, decision.reason)
            return
        conference_id = "conf-" + secrets.token_hex(6)
        conf = Conference(
            conference_id,
            f"sips:{conference_id}@{self.config.domain}",
            creator=user,
            secure=secure,
            members=listed_members(req.request, user, self.config.domain),  # RFC 5366
        )
        self.conferences[conference_id] = conf
        log.info("conference %s created by %s (secure=%s)", conference_id, user, secure)
        await self._admit(req, user, conf, offer, decision)

    async def _join(self, req: IncomingRequest, user: str, conf: Conference) -> None:
        refusal = join_refusal(conf, req.request, user, self.defects)  # members-only (R2)
        if refusal is not None:
            await req.respond(403, refusal)
            return
        offer = await self._offer(req)
        if offer is None:
            return
        decision = self._decide(offer, secure=conf.secure, joining=True)
        if not decision.accepted:
            if "key-in-error-response" in self.defects:  # the refusal lists media, keys too
                await leaky.refuse_with_media(self, req, conf, decision.status, decision.reason)
                return
            await req.respond(decision.status, decision.reason)
            return
        if "key-in-provisional" in self.defects:  # early media described by another leg
            await leaky.early_media(self, req, conf)
        await self._admit(req, user, conf, offer, decision)

    def _decide(self, offer: SessionDescription, *, secure: bool, joining: bool) -> PolicyDecision:
        require_srtp = secure and "accept-plain-rtp" not in self.defects
        if joining and "policy-not-applied" in self.defects:
            require_srtp = False
        allow_null = "accept-null-cipher" in self.defects
        suites = SECURE_SUITES + (NULL_SUITES if allow_null else ())
        if not secure:
            # A conference created without security answers in the clear.
            return evaluate_offer(offer, require_srtp=False, allow_null_cipher=True, suites=())
        if "accept-unknown-suite" in self.defects:
            blind = _first_crypto_blindly(offer)
            if blind is not None:
                return blind
        return evaluate_offer(
            offer,
            require_srtp=require_srtp,
            allow_null_cipher=allow_null,
            suites=suites,
            key_management=self.config.key_management,
            sdes_fallback=SDES_FALLBACK in self.defects,
        )

    async def _offer(self, req: IncomingRequest) -> SessionDescription | None:
        r = req.request
        try:
            body = offer_body(r)  # the SDP part of an RFC 5366 multipart body
        except RecipientListError as exc:
            await req.respond(400, f"Bad body: {exc}"[:120])
            return None
        if not body:
            await req.respond(488, "An SDP offer is required")
            return None
        lenient = "accept-malformed-sdp" in self.defects
        try:
            offer = parse_sdp(body)
        except SdpParseError as exc:
            if not lenient:
                await req.respond(400, f"Bad SDP: {exc}"[:120])
                return None
            return _template_offer(req.flow.remote[0])
        bad = _malformed_crypto(offer)
        if bad is not None:
            if not lenient:
                # RFC 4568 7.1.2: no valid a=crypto the answerer supports rejects the stream.
                await req.respond(488, f"Malformed a=crypto: {bad}"[:120])
                return None
            return _template_offer(req.flow.remote[0])
        refusal = self.floor.check_offer(offer) if self.floor is not None else None
        if refusal is not None:
            await req.respond(488, refusal)
            return None
        return offer

    async def _admit(
        self,
        req: IncomingRequest,
        user: str,
        conf: Conference,
        offer: SessionDescription,
        decision: PolicyDecision,
    ) -> None:
        leg_id = f"{conf.conference_id}/{user}/{secrets.token_hex(3)}"
        kinds = tuple(
            COMMON_MEDIA if is_common(c.media) else c.media.media for c in decision.choices
        )
        suite = next((c.crypto.suite for c in decision.choices if c.crypto), SECURE_SUITES[0])
        epoch, group, group_ssrc = self.rekey.joining(conf.conference_id, suite)
        ports = await self.mixer.allocate(conf.conference_id, leg_id, kinds)
        streams: list[StreamSetup] = []
        answer_media: list[MediaDescription] = []
        chosen = {c.index: c for c in decision.choices}
        for index, m in enumerate(offer.media):
            choice = chosen.get(index)
            if choice is None:
                floor = self.floor.answer(conf.conference_id, user, m) if self.floor else None
                rejected = MediaDescription.build(m.media, port=0, proto=m.proto, formats=m.formats)
                answer_media.append(floor or rejected)
                continue
            if is_common(m):  # the group-keyed common stream (R5), see reference/rekey.py
                remote = (m.connection_address or req.flow.remote[0], m.port)
                answer_media.append(
                    common_answer_line(m, ports[COMMON_MEDIA][1], group, group_ssrc)
                )
                streams.append(StreamSetup(COMMON_MEDIA, 0, remote, None, group, group_ssrc, epoch))
                continue
            pt = SUPPORTED_MEDIA[m.media]
            attrs: list[tuple[str, str | None]] = [("sendrecv", None)]
            remote = (m.connection_address or req.flow.remote[0], m.port)
            rtcp_remote = None
            if m.rtcp_mux:
                attrs.append(("rtcp-mux", None))
            elif not m.is_dtls_srtp:  # RTCP to a port of its own (DTLS would need a 2nd handshake)
                attrs.append(("rtcp", str(ports[m.media + RTCP_SUFFIX][1])))
                rtcp_remote = m.rtcp_address(req.flow.remote[0])
            dtls = None
            if choice.dtls and conf.secure:
                dtls = dtls_keying.new_association(m, self.defects)
                attrs[:0] = dtls_keying.answer_attributes(dtls)
                rx = tx = None
                ssrc = secrets.randbits(32)
                proto = m.proto
            elif choice.crypto is not None and conf.secure:
                self.keys.note_offered(choice.crypto)
                issued = self.keys.issue(
                    conf.conference_id, leg_id, m.media, choice.crypto, _offered_ssrc(m)
                )
                attrs.insert(0, ("crypto", issued.answer.to_value()))
                attrs.append(("ssrc", f"{issued.tx_ssrc} cname:focus@{self.config.domain}"))
                rx = SrtpKeys.from_crypto(choice.crypto)
                tx = issued.tx
                ssrc = issued.tx_ssrc
                proto = m.proto
            else:
                rx = tx = None
                ssrc = secrets.randbits(32)
                proto = "RTP/AVP"
            if rx is not None and SRTP_SUITES[rx.suite].null_cipher:
                rx = tx = None  # the accept-null-cipher defect: nothing to protect with
            answer_media.append(
                MediaDescription.build(
                    m.media, port=ports[m.media][1], proto=proto, formats=[pt], attributes=attrs
                )
            )
            streams.append(
                StreamSetup(m.media, int(pt), remote, rx, tx, ssrc, epoch, dtls, rtcp_remote)
            )
        self.mixer.install(LegSetup(conf.conference_id, leg_id, tuple(streams)))
        answer = SessionDescription.build("focus", self.host, media=answer_media)
        contact_uri = conf.uri
        sip_over_tls = req.request.uri.lower().startswith("sip:")  # only with the interop flag
        if sip_over_tls:
            # A sip: target the UA can reach without DNS, kept on TLS by transport=tls.
            host, port = req.flow.local[:2]
            host = f"[{host}]" if ":" in host else host
            contact_uri = f"sip:{conf.conference_id}@{host}:{port};transport=tls"
        isfocus = "" if "no-isfocus" in self.defects else ";isfocus"
        contact = f"<{contact_uri}>{isfocus}"
        dialog = await req.respond(
            200,
            headers=[("Contact", contact), ("Allow", ALLOW)],
            body=answer.to_bytes(),
            content_type="application/sdp",
        )
        leg = Leg(leg_id, user, dialog)
        conf.legs[leg_id] = leg
        self.rekey.admitted(
            conf.conference_id,
            leg_id,
            user,
            dialog,
            answer,
            streams,
            epoch,
            contact if sip_over_tls else None,
        )
        self.events.joined(conf, leg, req.request)
        if dialog is not None:
            dialog.on_request = self.in_dialog_handler(conf, leg, contact)

    def in_dialog_handler(self, conf: Conference, leg: Leg, contact: str):
        async def handler(req: IncomingRequest) -> None:
            if req.request.method == "BYE":
                await req.respond(200)
                self.leave(conf, leg)
            elif req.method in ("INVITE", "UPDATE"):  # a new offer: reoffer.py (R3)
                await self.reoffers.handle(req, conf, leg, contact)
            elif req.method == "OPTIONS":  # RFC 3261 section 11: also inside a dialog
                await req.respond(200, headers=[("Allow", ALLOW)])
            else:
                await req.respond(405)

        return handler

    def leave(self, conf: Conference, leg: Leg) -> None:
        conf.legs.pop(leg.leg_id, None)
        self.rekey.left(conf.conference_id, leg.leg_id)
        self.events.left(conf, leg)
        self.mixer.release(conf.conference_id, leg.leg_id)
        if not conf.legs and not conf.held:
            self.conferences.pop(conf.conference_id, None)

    def lost(self, conf: Conference, leg: Leg) -> None:
        """`leg`'s participant vanished without a BYE (its TLS connection closed and its media
        stopped, see liveness.py): it leaves exactly as with a BYE, so the others are rekeyed
        (R6) and its subscriptions end (R7). Nothing can reach it any more, so its dialog is
        forgotten rather than ended with a BYE of ours."""
        if conf.legs.get(leg.leg_id) is not leg:
            return
        if leg.dialog is not None and self._ua is not None:
            self._ua.forget_dialog(leg.dialog)
        self.leave(conf, leg)


def _malformed_crypto(offer: SessionDescription) -> str | None:
    """Why an a=crypto of the offer cannot be used (not base64, wrong length...), or None."""
    for m in offer.media:
        try:
            m.crypto  # noqa: B018 - parsing every a=crypto is the check
        except SdpParseError as exc:
            return exc.reason
    return None


def _template_offer(host: str) -> SessionDescription:
    """The `accept-malformed-sdp` defect: an offer that does not parse, or whose a=crypto does
    not, is taken as the focus's default one (audio, RTP/SAVP, a key it makes up) and admitted."""
    crypto = CryptoAttribute.generate(1, SECURE_SUITES[0])
    media = MediaDescription.build(
        "audio", port=9, proto="RTP/SAVP", formats=["0"], attributes=[("crypto", crypto.to_value())]
    )
    return SessionDescription.build("offer", host, media=[media])


def _first_crypto_blindly(offer: SessionDescription) -> PolicyDecision | None:
    """The `accept-unknown-suite` defect: the first a=crypto of each m-line is taken without
    looking at its suite, and a stream whose first suite is unknown silently falls back to plain
    RTP/AVP. None when no first suite is unknown (the policy then decides as usual)."""
    choices: list[MediaChoice] = []
    unknown = False
    for index, m in enumerate(offer.media):
        if m.media not in SUPPORTED_MEDIA or m.port == 0 or is_common(m):
            continue
        first = next(iter(m.crypto), None)
        if first is not None and not first.is_known:
            unknown = True
            first = None
        choices.append(MediaChoice(index, m, first))
    return PolicyDecision(True, choices=tuple(choices)) if unknown else None


def _offered_ssrc(m: MediaDescription) -> int | None:
    for name, value in m.attributes:
        if name == "ssrc" and value:
            try:
                return int(value.split()[0])
            except ValueError:
                return None
    return None
