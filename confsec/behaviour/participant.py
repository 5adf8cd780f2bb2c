"""A conference participant driven by the suite: a SIP user agent plus one media leg per medium.

The participant builds its own offer (fresh SDES keys per stream, an SSRC per stream announced
with a=ssrc), registers every key it sends or receives with the run's key-stream ledger, sends its
own tone and records what it hears. Once admitted it answers the focus's re-INVITEs (`attach`):
the offered `a=crypto` of each stream becomes a new SRTP receiver (the previous one stays as a
fallback for packets still in flight), and it answers with fresh keys for every stream it sends,
switching its running sender at once. Each set of keys it gets is a `RekeyRecord`, which the R6
judgement (confsec.behaviour.rekeying) reads.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field
from typing import TYPE_CHECKING

from confsec.behaviour import dtls_media, rtcp_media
from confsec.behaviour.offer_spec import NULL_OFFERS, OfferSpec
from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.errors import Inconclusive
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.srtp import new_receiver, new_sender
from confsec.media.tone import ToneGenerator
from confsec.net.ua import UserAgent
from confsec.target.model import Account, Target

if TYPE_CHECKING:
    from confsec.codec.sip import Response
    from confsec.net.dialog import Dialog
    from confsec.net.incoming import IncomingRequest

PAYLOAD_TYPES = {"audio": 0, "video": 96}
RECENT_PACKETS = 2000
"""Per leg: what rekeying is judged on (R6), packets from before a join to after the rekeys. A
video leg hears every other participant's switched video at 50 pps each (four others: ~10 s);
an audio or common leg hears one 50 pps mix (40 s)."""
COMMON = "common"

Key = tuple[str, bytes, bytes]  # (suite, master key, master salt)


@dataclass
class MediaStats:
    """What one leg received, split so that the parts add up to `received`."""

    received: int
    authenticated: int
    auth_failed: int
    replayed: int
    malformed: int
    plain: int = 0
    """RTP accepted as plain: the leg had no key for it (an RTP/AVP answer)."""
    rtcp: int = 0
    """RTCP on the muxed port that is not SRTCP authenticating under the key (plain RTCP,
    forged or replayed SRTCP): refused like media. SRTCP that is taken is not counted here or
    in `received` at all; `rtcp_checks` judges it."""
    held: int = 0
    """Packets that arrived before the answer brought their key and are still waiting for it:
    not yet judged (RFC 3264 allows media before the answer; SDES cannot open it sooner)."""
    strays: int = 0
    """Datagrams set aside as not the target's (`Reception.attribute`): not in `received`."""

    @property
    def judged(self) -> int:
        return self.received - self.held

    def set_aside(self) -> str:  # for a reason: " (N from elsewhere set aside)", or ""
        return f" ({self.strays} from elsewhere set aside)" if self.strays else ""

    @property
    def refused(self) -> int:
        """Judged packets that are not SRTP authenticating under the negotiated key."""
        return self.judged - self.authenticated

    def __add__(self, other: MediaStats) -> MediaStats:
        return MediaStats(*(a + b for a, b in zip(_counts(self), _counts(other), strict=True)))

    def __sub__(self, other: MediaStats) -> MediaStats:
        """What arrived between two snapshots (`other` the earlier one)."""
        return MediaStats(*(a - b for a, b in zip(_counts(self), _counts(other), strict=True)))

    def refusals(self) -> str:
        """Why the refused packets were refused, every non-zero part named: 'N failed
        authentication, N replayed, ...' (they add up to `refused`)."""
        parts = [
            (self.auth_failed, "failed authentication"),
            (self.replayed, "replayed"),
            (self.malformed, "not SRTP"),
            (self.plain, "plain RTP"),
            (self.rtcp, "RTCP not SRTCP under the key"),
        ]
        return ", ".join(f"{n} {what}" for n, what in parts if n) or "none"


def _counts(s: MediaStats) -> tuple[int, ...]:
    return astuple(s)


NO_MEDIA = MediaStats(0, 0, 0, 0, 0)


def received_total(p: Participant) -> MediaStats:
    """Everything `p` received on all its legs, added up."""
    return sum(p.receive_stats().values(), NO_MEDIA)


@dataclass
class Participant:
    name: str
    account: Account
    target: Target
    ua: UserAgent
    ledger: KeyStreamLedger
    tone_hz: float
    all_tones: dict[str, float]
    legs: dict[str, MediaLeg] = field(default_factory=dict)
    send_crypto: dict[str, CryptoAttribute] = field(default_factory=dict)
    ssrcs: dict[str, int] = field(default_factory=dict)
    offer_spec: OfferSpec | None = None
    dialog: Dialog | None = None
    """The dialog with the focus once admitted: BYE to leave, re-INVITEs (rekeys) come in it."""
    rekeys: list[RekeyRecord] = field(default_factory=list)
    """Every re-INVITE that brought new keys (confsec.behaviour.rekeying)."""
    rekey_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set with every new entry in `rekeys`, so waiting for a rekey awaits it, never polls."""
    dtls: dtls_media.DtlsKeying | None = None
    """The DTLS identity and associations, where the offer was DTLS-SRTP (dtls_media.py)."""
    keylog: str | None = None
    """The run's NSS key log, where the DTLS handshakes add their lines too."""

    # -- offer / answer ------------------------------------------------------------------------

    async def build_offer(self, spec: OfferSpec) -> bytes:
        """Open one UDP leg per medium and describe them, with fresh keys per stream."""
        await self.close_media()
        self.offer_spec = spec
        sdes_only = spec.keying == "sdes" or spec.suite in NULL_OFFERS or bool(spec.session_params)
        dtls = dtls_media.uses_dtls(self, spec.secure, sdes_only)
        media = []
        for tag, kind in enumerate(spec.media, start=1):
            leg = await MediaLeg.open(host="127.0.0.1", port=0, recent_limit=RECENT_PACKETS)
            self.legs[kind] = leg
            self.ssrcs[kind] = fresh_ssrc(self.ssrcs.values())
            attrs: list[tuple[str, str | None]] = []
            proto = "RTP/AVP"
            if dtls:
                proto = dtls_media.DTLS_PROTO
                attrs += dtls_media.offer_attributes(
                    self, kind, leg, spec.suite, mismatched=spec.keying != "auto"
                )
            elif spec.secure:
                proto = "RTP/SAVP"
                crypto = CryptoAttribute.generate(tag, spec.suite)
                if spec.session_params:
                    crypto = CryptoAttribute(
                        crypto.tag,
                        crypto.suite,
                        crypto.key,
                        crypto.salt,
                        crypto.lifetime,
                        crypto.mki,
                        spec.session_params,
                    )
                self.send_crypto[kind] = crypto
                attrs.append(("crypto", crypto.to_value()))
            attrs += [
                ("sendrecv", None),
                ("ssrc", f"{self.ssrcs[kind]} cname:{self.name}@confsec"),
                *await rtcp_media.offer_attributes(
                    leg, f"{self.name}@confsec", own_port=not dtls, mux=spec.rtcp_mux
                ),
            ]
            media.append(
                MediaDescription.build(
                    kind,
                    port=leg.local_addr[1],
                    proto=proto,
                    formats=[str(PAYLOAD_TYPES[kind])],
                    attributes=attrs,
                )
            )
        if spec.common and spec.secure and not dtls and self.target.capabilities.group_keys:
            media.append(await common_offer_line(self, spec.suite))
        if spec.secure:  # DTLS too: what comes before the handshake is judged by its keys
            for leg in self.legs.values():
                leg.expect_key()  # media may come before the answer that brings its key
                if leg.rtcp_channel is not None:
                    leg.rtcp_channel.expect_key()
        return SessionDescription.build(self.name, "127.0.0.1", media=media).to_bytes()

    def apply_answer(self, answer: SessionDescription, peer: str = "focus") -> None:
        """Point each leg at the focus's media address and install both directions' keys."""
        for m in answer.media:
            leg = self.legs.get(stream_kind(m))
            if leg is None or m.port == 0:
                continue
            leg.set_remote((m.connection_address or self.target.host, m.port))
            rtcp_media.take_answer(leg, m, self.target.host, self.ssrcs.get(stream_kind(m), 0))
            if self.dtls is not None and stream_kind(m) in self.dtls.drivers:
                dtls_media.take_answer(self, stream_kind(m), leg, m)  # keys: await_keys()
                continue
            sent = self.send_crypto.get(stream_kind(m))
            received = next((c for c in m.crypto if not c.is_null), None) if m.crypto else None
            if sent is not None and not sent.is_null and sent.suite not in NULL_OFFERS:
                leg.sender = new_sender(
                    self.ledger,
                    StreamId(self.name, peer, m.media, "send"),
                    sent.suite,
                    sent.key,
                    sent.salt,
                )
            if received is not None and received.is_known:
                leg.set_receiver(
                    new_receiver(
                        self.ledger,
                        StreamId(self.name, peer, m.media, "recv", stream_label(m)),
                        received.suite,
                        received.key,
                        received.salt,
                    )
                )
            else:
                leg.set_receiver(None)  # no key in the answer: what came is judged as plain

    # -- media ---------------------------------------------------------------------------------

    def start_media(self, *, plain: bool = False) -> None:
        for kind, leg in self.legs.items():
            if leg.remote is None or kind == "common":  # the common stream is receive-only
                continue
            frames = ToneGenerator(self.tone_hz).frames() if kind == "audio" else _video_frames()
            leg.start_sending(
                None if plain else leg.sender,
                ssrc=self.ssrcs[kind],
                payload_type=PAYLOAD_TYPES[kind],
                frames=frames,
            )

    def stop_media(self) -> None:
        for leg in self.legs.values():
            leg.stop_sending()

    def receive_stats(self) -> dict[str, MediaStats]:
        out = {}
        for kind, leg in self.legs.items():
            if leg.remote is None:
                continue
            s = leg.stats
            out[kind] = MediaStats(
                s.received - s.rtcp_accepted,
                s.authenticated,
                s.auth_failed,
                s.replayed,
                s.malformed,
                s.plain,
                s.rtcp - s.rtcp_accepted,
                s.held,
                s.strays,
            )
        return out

    def heard_tones(self, candidates: list[float]) -> set[float]:
        leg = self.legs.get("audio")
        return set() if leg is None else set(leg.heard_tones(candidates))

    def other_tones(self) -> list[float]:
        return [f for n, f in self.all_tones.items() if n != self.name]

    async def close_media(self) -> None:
        for leg in self.legs.values():
            leg.close()
        self.legs.clear()
        self.send_crypto.clear()
        if self.dtls is not None:
            for driver in self.dtls.drivers.values():
                driver.close()
            self.dtls = None

    async def close(self) -> None:
        await self.close_media()
        await self.ua.close()


def fresh_ssrc(taken: object) -> int:
    """A random non-zero SSRC not in `taken` (a participant's streams never share one)."""
    while True:
        ssrc = secrets.randbits(32)
        if ssrc and ssrc not in taken:  # type: ignore[operator]
            return ssrc


def _video_frames() -> Iterator[bytes]:
    """Synthetic 'video' payloads: distinct per frame, so fan-out and reuse can be told apart."""
    for n in itertools.count():
        yield n.to_bytes(4, "big") + secrets.token_bytes(96)


# -- SDP of the streams ------------------------------------------------------------------------


def stream_kind(m: MediaDescription) -> str:
    """Which leg of a participant an m-line belongs to: 'common' for `a=label:common`."""
    return COMMON if any(n == "label" and v == COMMON for n, v in m.attributes) else m.media


def stream_label(m: MediaDescription) -> str:
    return COMMON if stream_kind(m) == COMMON else ""


async def common_offer_line(p: Participant, suite: str) -> MediaDescription:
    """Open the common-stream leg and offer it receive-only (RFC 4568: our key here is never
    used, since we send nothing on it; the answer's key is the group key)."""
    leg = await MediaLeg.open(host="127.0.0.1", port=0, recent_limit=RECENT_PACKETS)
    p.legs[COMMON] = leg
    crypto = CryptoAttribute.generate(len(p.legs), suite)
    return MediaDescription.build(
        "audio",
        port=leg.local_addr[1],
        proto="RTP/SAVP",
        formats=["0"],
        attributes=[("crypto", crypto.to_value()), ("recvonly", None), ("label", COMMON)],
    )


# -- the participant's side of a rekey ----------------------------------------------------------


@dataclass
class RekeyRecord:
    """One set of keys a participant got from the focus: at admission, or by re-INVITE."""

    epoch: int
    """1 for the keys of the 200 OK, then 2, 3... per re-INVITE (the participant's count)."""
    at: float
    """Loop time the keys were offered: the 200 OK, or the re-INVITE that brought them. What
    ties a rekey to the join or leave that caused it. With DTLS-SRTP the keys come later, from
    the handshakes that offer started; the record is added then, but keeps the offer's time (a
    join's handshake that completes after a later leave is not that leave's rekey)."""
    recv_keys: dict[str, Key] = field(default_factory=dict)
    """Per leg ('audio', 'video', 'common'): the key the focus sends with."""
    changed: tuple[str, ...] = ()
    """Legs whose receive key differs from the one before."""


def attach(p: Participant, dialog: Dialog | None, answer: SessionDescription) -> None:
    """After admission: remember the dialog and the first keys, and answer later re-INVITEs."""
    p.dialog = dialog
    record = RekeyRecord(1, asyncio.get_running_loop().time())
    for m in answer.media:
        crypto = usable_crypto(m)
        if crypto is not None and m.port != 0:
            record.recv_keys[stream_kind(m)] = (crypto.suite, crypto.key, crypto.salt)
        exported = p.dtls.recv_keys.get(stream_kind(m)) if p.dtls is not None else None
        if crypto is None and m.port != 0 and exported is not None:
            record.recv_keys[stream_kind(m)] = exported  # DTLS-SRTP: from the handshake
    record.changed = tuple(record.recv_keys)
    p.rekeys.append(record)
    if dialog is not None:
        dialog.on_request = dialog_handler(p)


def dialog_handler(p: Participant):
    async def handler(req: IncomingRequest) -> None:
        method = req.method
        if method == "INVITE" and req.request.body:
            try:
                offer = parse_sdp(req.request.body)
            except SdpParseError:
                await req.respond(488, "Bad SDP")
                return
            answer = take_rekey(p, offer)
            await req.respond(200, body=answer.to_bytes(), content_type="application/sdp")
        elif method == "INVITE":
            await req.respond(488)
        elif method in ("BYE", "OPTIONS", "NOTIFY", "INFO", "UPDATE"):
            await req.respond(200)
        else:
            await req.respond(405)

    return handler


def take_rekey(p: Participant, offer: SessionDescription) -> SessionDescription:
    """Install the focus's new keys and answer with fresh keys for everything we send."""
    now = asyncio.get_running_loop().time()
    previous = p.rekeys[-1].recv_keys if p.rekeys else {}
    record = RekeyRecord(len(p.rekeys) + 1, now)
    label = f"epoch-{record.epoch}"
    changed = []
    media = []
    pending: list[dtls_media.PendingRekey] = []
    for m in offer.media:
        kind = stream_kind(m)
        leg = p.legs.get(kind)
        crypto = usable_crypto(m)
        if leg is not None and m.port != 0 and m.is_dtls_srtp and p.dtls is not None:
            leg.set_remote((m.connection_address or p.target.host, m.port))
            dtls_attrs, started = dtls_media.answer_rekey(p, m, leg)
            if dtls_attrs is not None:
                if started is not None:
                    pending.append(started)
                dtls_attrs += [
                    ("sendrecv", None),
                    ("ssrc", f"{p.ssrcs[kind]} cname:{p.name}@confsec"),
                    *rtcp_media.rekey_attributes(leg, m),
                ]
                media.append(
                    MediaDescription.build(
                        m.media,
                        port=leg.local_addr[1],
                        proto=m.proto,
                        formats=m.formats,
                        attributes=dtls_attrs,
                    )
                )
                continue
        if leg is None or m.port == 0 or crypto is None:
            media.append(MediaDescription.build(m.media, port=0, proto=m.proto, formats=m.formats))
            continue
        leg.set_remote((m.connection_address or p.target.host, m.port))
        key = (crypto.suite, crypto.key, crypto.salt)
        record.recv_keys[kind] = key
        if previous.get(kind) != key:
            changed.append(kind)
            sid = StreamId(p.name, "focus", m.media, "recv", f"{stream_label(m)} {label}".strip())
            leg.set_receiver(new_receiver(p.ledger, sid, *key), keep_previous=True)
        mine = CryptoAttribute.generate(crypto.tag, crypto.suite)
        attrs: list[tuple[str, str | None]] = [("crypto", mine.to_value())]
        if kind == COMMON:
            attrs += [("recvonly", None), ("label", COMMON)]
        else:
            sender = new_sender(
                p.ledger,
                StreamId(p.name, "focus", m.media, "send", label),
                mine.suite,
                mine.key,
                mine.salt,
            )
            leg.replace_sender(sender)
            p.send_crypto[kind] = mine
            attrs += [("sendrecv", None), ("ssrc", f"{p.ssrcs[kind]} cname:{p.name}@confsec")]
            attrs += rtcp_media.rekey_attributes(leg, m)
        media.append(
            MediaDescription.build(
                m.media, port=leg.local_addr[1], proto=m.proto, formats=m.formats, attributes=attrs
            )
        )
    answer = SessionDescription.build(p.name, "127.0.0.1", media=media)
    if pending:  # DTLS-SRTP: the epoch's keys are those of the new handshakes
        asyncio.get_running_loop().create_task(
            dtls_media.finish_rekey(p, pending, lambda keys: _record(p, record, keys))
        )
        return answer
    record.changed = tuple(changed)
    p.rekeys.append(record)
    p.rekey_arrived.set()
    return answer


def _record(p: Participant, record: RekeyRecord, keys: dict[str, Key]) -> None:
    """A DTLS-SRTP rekey's `RekeyRecord`, once its handshakes are done (dtls_media.py)."""
    previous = p.rekeys[-1].recv_keys if p.rekeys else {}
    record.recv_keys = {**previous, **keys}
    record.changed = tuple(k for k, v in keys.items() if previous.get(k) != v)
    record.epoch = len(p.rekeys) + 1
    p.rekeys.append(record)
    p.rekey_arrived.set()


def usable_crypto(m: MediaDescription) -> CryptoAttribute | None:
    """The first a=crypto of `m` with a known, non-null suite (RFC 4568 7.1.2), or None."""
    try:
        return next((c for c in m.crypto if not c.is_null and c.is_known), None)
    except Exception:  # a malformed a=crypto: treated as none, the checks will say so
        return None


# -- offers of the participant's own, inside its dialog (RFC 3261 14, RFC 3311) ----------------


async def send_in_dialog(p: Participant, method: str, sdp: bytes, timeout: float) -> Response:
    """Offer `sdp` to the focus in `p`'s dialog: a re-INVITE (RFC 3261 section 14; a 2xx is
    ACKed by the dialog) or an UPDATE (RFC 3311). Only sends: what the answer changes is the
    caller's to apply (`confsec.behaviour.reoffer`), since a check may want it not applied."""
    if p.dialog is None or p.dialog.is_terminated:
        raise Inconclusive(f"{p.name} has no dialog with the focus to send a {method} in")
    if method.upper() in ("INVITE", "RE-INVITE"):
        return await p.dialog.reinvite(sdp, timeout=timeout)
    return await p.dialog.request(method, sdp, content_type="application/sdp", timeout=timeout)
