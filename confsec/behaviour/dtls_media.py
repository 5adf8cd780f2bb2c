"""A participant's DTLS-SRTP keying (RFC 5763, RFC 5764, RFC 8842): offers, answers, rekeys.

Where the capability statement names `dtls-srtp` as the target's key management, a secure
offer carries `UDP/TLS/RTP/SAVP` with `a=fingerprint`, `a=setup:actpass` and `a=tls-id`, and no
`a=crypto`: no SRTP key travels in the signalling. The keys come out of the handshake on each
media leg, and they go through the same factory and key-stream ledger as SDES keys, so every
check that judges keys (R3, R4, R6) judges these as well.

What a rekey means in this mode: the focus re-offers a stream with a new `a=tls-id` (RFC 8842
section 5), which asks for a new association; the participant answers with its own new tls-id,
runs the new handshake, and the new exported keys are the stream's next epoch (a
`RekeyRecord`). A re-offer with the same tls-id keeps the association: nothing is rekeyed.

Rekeys may come faster than handshakes end (a join, then a leave, on a loaded service). A
re-offer supersedes the association of the previous one if that has not completed yet: it is
closed at once (no key of it was ever used, and its flights would reach the service's new
association), and that rekey ends without keys and without a failure. The association in use
stays until the new one completes. The service's late flights of the superseded association
still reach the leg; `MediaLeg`'s `AssociationRouter` keeps them from the new handshake.

The participant offers `actpass` and cannot know its role before the answer, while the
answerer may send its ClientHello before the answer arrives (RFC 5763 section 5); so each leg
waits as a DTLS server from the offer on, and turns client if the answer says `passive`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from confsec.codec.sdp import MediaDescription, SdpParseError, SetupRole, new_tls_id
from confsec.errors import ConfsecError, Inconclusive
from confsec.media.dtls import (
    DtlsSrtpEndpoint,
    HandshakeCompleted,
    SrtpKeys,
    self_signed_identity,
)
from confsec.media.dtls_records import PROFILE_KEYS
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.srtp import new_receiver, new_sender
from confsec.target.model import Target

if TYPE_CHECKING:
    from confsec.media.dtls_leg import DtlsDriver

__all__ = [
    "DTLS_PROTO",
    "DtlsKeying",
    "Party",
    "PendingRekey",
    "answer_rekey",
    "await_keys",
    "finish_rekey",
    "offer_attributes",
    "take_answer",
    "uses_dtls",
]

DTLS_PROTO = "UDP/TLS/RTP/SAVP"


@dataclass
class DtlsKeying:
    """A participant's DTLS identity and the association each of its legs runs."""

    certificate: object = field(repr=False)
    private_key: object = field(repr=False)
    fingerprint: str
    drivers: dict[str, DtlsDriver] = field(default_factory=dict, repr=False)
    tls_ids: dict[str, str] = field(default_factory=dict)
    """Per leg: the tls-id of the association in use, ours and the focus's."""
    failures: dict[str, str] = field(default_factory=dict)
    """Per leg: why its handshake failed (the evidence of an R2 or R3 check)."""
    recv_keys: dict[str, tuple[str, bytes, bytes]] = field(default_factory=dict, repr=False)
    """Per leg: the exported key the focus's side sends with (suite, key, salt)."""
    in_use: dict[str, DtlsDriver] = field(default_factory=dict, repr=False)
    """Per leg: the association whose keys are installed (`drivers` may hold a newer one)."""

    profile: str = "SRTP_AES128_CM_SHA1_80"
    """The one protection profile offered (the offer's suite, `profile_for_suite`)."""
    exported: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)
    """Every (key, salt) the handshakes exported, both directions (key confinement, R3)."""
    connected_at: dict[str, float | None] = field(default_factory=dict)
    """Per leg: loop time the first handshake completed on our side, whenever the answer came
    with the fingerprint that released its keys: no SRTP can be made before it."""
    selected: dict[str, str] = field(default_factory=dict)
    """Per leg: the suite of the profile the handshake selected (R3 judges it)."""
    keylog: str | None = None
    """The run's NSS key log (the SIP TLS one): each handshake adds its CLIENT_RANDOM line,
    so that `confsec analyze --keylog` can open a capture of the run's media."""

    @classmethod
    def new(cls, name: str, suite: str, keylog: str | None = None) -> DtlsKeying:
        cert, key, fingerprint = self_signed_identity(f"{name}.confsec")
        return cls(cert, key, fingerprint, profile=profile_for_suite(suite), keylog=keylog)

    def log_key(self, line: bytes) -> None:
        """OpenSSL's key log callback: it must not raise, so a line that cannot be written is
        lost (the capture of that leg stays unopened), never the handshake."""
        if self.keylog is None:
            return
        try:
            with open(self.keylog, "ab") as f:  # O_APPEND: whole lines beside OpenSSL's own
                f.write(line + b"\n")
        except OSError:
            pass


class Party(Protocol):
    """What of a participant this module uses (the participant imports this module)."""

    name: str
    target: Target
    ledger: KeyStreamLedger
    legs: dict[str, MediaLeg]
    dtls: DtlsKeying | None
    keylog: str | None


Key = tuple[str, bytes, bytes]


@dataclass
class PendingRekey:
    """A new association started by a re-offer: its handshake, and the leg it keys."""

    kind: str
    media: MediaDescription
    leg: MediaLeg
    driver: DtlsDriver
    old: DtlsDriver | None


def uses_dtls(p: Party, secure: bool, sdes_only: bool) -> bool:
    """Whether `p` offers DTLS-SRTP: a secure offer to a target whose key management is it.
    Null suites and SDES session parameters are SDES notions (`sdes_only`)."""
    return secure and not sdes_only and p.target.capabilities.key_management == "dtls-srtp"


def _endpoint(p: Party, role: str, expected: list[str] | None) -> DtlsSrtpEndpoint:
    assert p.dtls is not None
    return DtlsSrtpEndpoint(
        role,  # type: ignore[arg-type]
        p.dtls.certificate,  # type: ignore[arg-type]
        p.dtls.private_key,  # type: ignore[arg-type]
        srtp_profiles=(p.dtls.profile,),
        expected_fingerprint=expected,
        cookies=False,
        keylog=p.dtls.log_key,
    )


def profile_for_suite(suite: str) -> str:
    """The use_srtp protection profile (RFC 5764 section 4.1.2, RFC 7714) of an SDES suite
    name, so that a scenario "with AEAD_AES_128_GCM" offers that profile and nothing else."""
    for name, (s, _, _) in PROFILE_KEYS.items():
        if s == suite:
            return name
    raise Inconclusive(f"{suite} has no DTLS-SRTP protection profile")


def offer_attributes(
    p: Party, kind: str, leg: MediaLeg, suite: str, *, mismatched: bool = False
) -> list[tuple[str, str | None]]:
    """The DTLS lines of `kind`'s offer; the leg waits for a ClientHello from now on.

    `mismatched` signals the fingerprint of a certificate the participant never presents: the
    service must then refuse the association (R2), since anyone could have sent that offer."""
    if p.dtls is None:
        p.dtls = DtlsKeying.new(p.name, suite, p.keylog)
    tls_id = new_tls_id()
    p.dtls.tls_ids[kind] = tls_id
    p.dtls.drivers[kind] = leg.attach_dtls(_endpoint(p, "server", None))
    fingerprint = self_signed_identity("not-presented")[2] if mismatched else p.dtls.fingerprint
    return [("fingerprint", fingerprint), ("setup", "actpass"), ("tls-id", tls_id)]


def _fingerprints(m: MediaDescription) -> list[str]:
    try:
        return [f.to_value() for f in m.fingerprints]
    except SdpParseError:
        return []


def take_answer(p: Party, kind: str, leg: MediaLeg, m: MediaDescription) -> None:
    """Settle `kind`'s association from the answer: its role and the fingerprint to expect."""
    assert p.dtls is not None
    driver = p.dtls.drivers.get(kind)
    try:
        setup = m.setup
    except SdpParseError as exc:
        p.dtls.failures[kind] = f"the answer's a=setup is malformed: {exc}"
        return
    expected = _fingerprints(m)
    if not expected:
        p.dtls.failures[kind] = "the answer has no usable a=fingerprint (RFC 8122)"
        return
    try:
        if m.tls_id:
            p.dtls.tls_ids[f"{kind} focus"] = m.tls_id
    except SdpParseError:
        pass  # the association works without it; a new one on a re-offer then
    if setup == SetupRole.PASSIVE:  # the focus's side waits: we send the ClientHello
        if driver is not None:
            driver.close()
        driver = p.dtls.drivers[kind] = leg.attach_dtls(_endpoint(p, "client", expected))
        driver.start()
    elif setup == SetupRole.ACTIVE and driver is not None:
        driver.set_expected_fingerprint(expected)
    else:
        p.dtls.failures[kind] = f"the answer's a=setup is {setup}: RFC 5763 needs active/passive"


def _install(
    p: Party,
    kind: str,
    leg: MediaLeg,
    m: MediaDescription,
    keys: SrtpKeys,
    label: str,
    keep_previous: bool,
) -> None:
    suite = keys.suite
    send = StreamId(p.name, "focus", m.media, "send", label)
    recv = StreamId(p.name, "focus", m.media, "recv", label)
    leg.sender = new_sender(p.ledger, send, suite, keys.local_key, keys.local_salt)
    leg.replace_sender(leg.sender)
    leg.set_receiver(
        new_receiver(p.ledger, recv, suite, keys.remote_key, keys.remote_salt),
        keep_previous=keep_previous,
    )
    assert p.dtls is not None
    p.dtls.recv_keys[kind] = (suite, keys.remote_key, keys.remote_salt)
    p.dtls.selected[kind] = suite
    p.dtls.exported += [(keys.local_key, keys.local_salt), (keys.remote_key, keys.remote_salt)]


async def await_keys(p: Party, answer_media: list[MediaDescription], timeout: float) -> str | None:
    """Wait for every leg's handshake and key its SRTP; the reason of the first failure, or
    None. Media starts only after this: nothing is sent before the handshake completes."""
    if p.dtls is None:
        return None
    failure = None
    for m in answer_media:
        kind = m.media
        leg = p.legs.get(kind)
        driver = p.dtls.drivers.get(kind)
        if leg is None or driver is None or m.port == 0:
            continue
        if kind in p.dtls.failures:
            failure = failure or p.dtls.failures[kind]
            continue
        try:
            keys = await driver.wait_connected(timeout)
        except ConfsecError as exc:
            p.dtls.failures[kind] = str(exc)
            failure = failure or f"{kind}: {exc}"
            continue
        _install(p, kind, leg, m, keys, "", keep_previous=False)
        p.dtls.in_use[kind] = driver
        p.dtls.connected_at[kind] = driver.endpoint.handshake_done_at
    return failure


def answer_rekey(
    p: Party, m: MediaDescription, leg: MediaLeg
) -> tuple[list[tuple[str, str | None]] | None, PendingRekey | None]:
    """`m` is the focus's re-offer of a DTLS stream: the answer's DTLS lines, and the new
    association when its tls-id is new (a rekey); (None, None) if it cannot be answered."""
    if p.dtls is None:
        raise Inconclusive(f"{p.name} got a DTLS-SRTP re-offer for a stream it keyed otherwise")
    kind = m.media
    try:
        tls_id = m.tls_id
    except SdpParseError:
        return None, None
    if tls_id is not None and tls_id == p.dtls.tls_ids.get(f"{kind} focus"):
        ours = p.dtls.tls_ids[kind]
        return [("fingerprint", p.dtls.fingerprint), ("setup", "active"), ("tls-id", ours)], None
    expected = _fingerprints(m)
    if not expected:
        return None, None
    old = p.dtls.in_use.get(kind)
    previous = p.dtls.drivers.get(kind)
    if previous is not None and previous is not old:
        if previous.endpoint.state == "connected":
            old = previous
        else:  # the previous rekey's handshake has not completed: this re-offer supersedes it
            previous.close()
    ours = new_tls_id()
    p.dtls.tls_ids[kind] = ours
    if tls_id:
        p.dtls.tls_ids[f"{kind} focus"] = tls_id
    label = f"epoch-{len(p.rekeys) + 1}"

    def keyed(event: object) -> None:
        # On the completion itself, not after a task switch: the peer's first packet under the
        # new keys may be the very next datagram on this socket.
        if isinstance(event, HandshakeCompleted):
            keys = driver.endpoint.srtp_keys()
            _install(p, kind, leg, m, keys, label, keep_previous=True)
            p.dtls.in_use[kind] = driver

    driver = p.dtls.drivers[kind] = leg.attach_dtls(_endpoint(p, "client", expected), keyed)
    driver.start()
    attrs: list[tuple[str, str | None]] = [
        ("fingerprint", p.dtls.fingerprint),
        ("setup", "active"),
        ("tls-id", ours),
    ]
    return attrs, PendingRekey(kind, m, leg, driver, old)


async def finish_rekey(
    p: Party, pending: list[PendingRekey], record: Callable[[dict[str, Key]], None]
) -> None:
    """Await the new associations of one re-offer (each leg is keyed on its completion), and
    `record` them as one epoch: the keys of one rekey are one `RekeyRecord`, as for SDES. An
    association a later re-offer superseded (`answer_rekey`) brings no keys and no failure."""
    assert p.dtls is not None
    keys_by_kind: dict[str, Key] = {}
    for r in pending:
        try:
            keys = await r.driver.wait_connected(p.target.timeouts.transaction)
        except ConfsecError as exc:
            if p.dtls.drivers.get(r.kind) is r.driver:  # else superseded: not a failure
                p.dtls.failures[r.kind] = f"rekey: {exc}"
            continue
        if r.old is not None and r.old is not r.driver:
            r.old.close()
        keys_by_kind[r.kind] = (keys.suite, keys.remote_key, keys.remote_salt)
    record(keys_by_kind)
