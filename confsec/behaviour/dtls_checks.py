"""Judging DTLS-SRTP answers and handshakes (RFC 5763, RFC 5764, RFC 8122): R2 and R3.

An SDES answer proves its protection by the key it carries; a DTLS-SRTP answer carries none,
so what the signalling must show is the other half of the key exchange: a fingerprint with a
hash RFC 8122 accepts and a role, and then the handshake on the media port must complete
against that fingerprint before any key exists. `answer_line` is the first judgement and
`handshakes` the second; both are reached from the SDES-shaped checks wherever an answer's
m-line is `UDP/TLS/RTP/SAVP`, so that no scenario has to be written twice.
"""

from __future__ import annotations

from typing import Protocol

from confsec.behaviour.dtls_media import DtlsKeying
from confsec.behaviour.outcomes import CallOutcome
from confsec.codec.sdp import MediaDescription, SdpParseError, SetupRole
from confsec.errors import Inconclusive, NonConformance
from confsec.media.endpoint import MediaLeg
from confsec.observed import Evidence

__all__ = [
    "answer_line",
    "handshakes",
    "no_association",
    "no_media_before_keys",
    "refused_or_dtls",
]


class DtlsParty(Protocol):
    """What of a participant the DTLS checks read (the participant module imports this one)."""

    name: str
    tone_hz: float
    legs: dict[str, MediaLeg]
    dtls: DtlsKeying | None

    def heard_tones(self, candidates: list[float]) -> set[float]: ...


def answer_line(m: MediaDescription) -> None:
    """R3: one accepted DTLS-SRTP m-line of an answer can key SRTP at all."""
    try:
        fingerprints = m.fingerprints
        setup = m.setup
    except SdpParseError as exc:
        raise NonConformance(f"the answer's m={m.media} has a malformed DTLS line: {exc}") from None
    if not any(f.is_acceptable_hash for f in fingerprints):
        raise NonConformance(
            f"the answer's m={m.media} is {m.proto} without an a=fingerprint whose hash RFC 8122 "
            "accepts: the DTLS certificate cannot be authenticated"
        )
    if setup not in (SetupRole.ACTIVE, SetupRole.PASSIVE):
        raise NonConformance(
            f"the answer's m={m.media} has a=setup:{setup}: an answer takes active or passive "
            "(RFC 5763 section 5)"
        )


def handshakes(outcome: CallOutcome) -> None:
    """R3: the DTLS handshakes of an admitted participant completed, so its SRTP is keyed."""
    if outcome.dtls_failure is not None:
        raise NonConformance(
            f"{outcome.participant}'s DTLS-SRTP handshake did not complete: {outcome.dtls_failure}"
        )


def refused_or_dtls(outcome: CallOutcome | None, name: str) -> Evidence:
    """R3: an SDES offer to a DTLS-SRTP service is refused, or answered with DTLS-SRTP; never
    with a=crypto keys in the SDP, which would key the media through the signalling after all
    (the fallback RFC 5763 exists to avoid)."""
    if outcome is None or outcome.status is None:
        raise Inconclusive(f"{name}'s SDES offer got no final response")
    if not 200 <= outcome.status < 300:
        return Evidence.of(
            f"{name}'s SDES offer refused with {outcome.status} {outcome.reason}", refusals=1
        )
    if outcome.answer is None:
        raise NonConformance(f"{name}'s SDES offer was accepted without an SDP answer")
    accepted = [m for m in outcome.answer.media if m.port != 0]
    keyed = [m.media for m in accepted if m.crypto]
    if keyed:
        raise NonConformance(
            f"the DTLS-SRTP service answered {name}'s SDES offer with a=crypto keys in the SDP "
            f"(m={', m='.join(keyed)}): it falls back to keys carried in the signalling"
        )
    plain = [f"m={m.media} {m.proto}" for m in accepted if not m.is_dtls_srtp]
    if plain:
        raise NonConformance(f"{name}'s SDES offer was answered with {', '.join(plain)}")
    return Evidence.of(f"{name}'s SDES offer answered with DTLS-SRTP", dtls_streams=len(accepted))


def no_association(outcome: CallOutcome | None, p: DtlsParty, others: list[DtlsParty]) -> Evidence:
    """R2: a participant whose certificate does not match the fingerprint it signalled gets no
    association: the service checked the certificate against the SIPS-signalled fingerprint,
    which is all that authenticates a DTLS-SRTP key exchange (RFC 5763 section 5). So no keys,
    and no media either way. Judged after a control in which another participant's handshake,
    with a matching fingerprint, completed and carried media."""
    if outcome is None or outcome.status is None:
        raise Inconclusive(f"{p.name}'s offer got no final response")
    if not 200 <= outcome.status < 300:
        return Evidence.of(f"{p.name} refused with {outcome.status} {outcome.reason}", refusals=1)
    if outcome.dtls_failure is None:
        raise NonConformance(
            f"the service completed a DTLS association with {p.name}, whose certificate does not "
            "match the a=fingerprint of its offer: it does not check the peer's certificate"
        )
    received = sum(leg.authenticated for leg in p.legs.values())
    if received:
        raise NonConformance(f"{received} SRTP packets reached {p.name} without an association")
    heard = [o.name for o in others if p.tone_hz in o.heard_tones([p.tone_hz])]
    if heard:
        raise NonConformance(f"{', '.join(heard)} heard {p.name} without an association")
    return Evidence.of(
        f"{p.name}'s handshake ended: {outcome.dtls_failure}",
        handshakes_refused=1,
        listeners_checked=len(others),
    )


def no_media_before_keys(parties: list[DtlsParty]) -> Evidence:
    """R3: nothing arrives on a DTLS-SRTP leg before its handshake completed on our side (the
    target could not have had keys for SRTP: what comes earlier is unprotected or keyed some
    other way), and everything that came after authenticated. A leg that received nothing
    shows nothing: inconclusive."""
    early, judged = [], 0
    for p in parties:
        if p.dtls is None:
            raise Inconclusive(f"{p.name} did not key its media with DTLS-SRTP")
        for kind, leg in p.legs.items():
            done = p.dtls.connected_at.get(kind)
            if done is None:
                raise NonConformance(f"{p.name}'s {kind} handshake never completed")
            before = [t for t, _, _ in leg.raw_packets if t < done]
            if before:
                early.append(
                    f"{len(before)} on {p.name}'s {kind} leg, the first "
                    f"{(done - before[0]) * 1000:.0f} ms before its handshake completed"
                )
            if leg.auth_failed or leg.plain:
                early.append(
                    f"{leg.auth_failed + leg.plain} packets on {p.name}'s {kind} leg "
                    "did not authenticate under the exported keys"
                )
            judged += leg.authenticated
    if early:
        raise NonConformance("media before the DTLS-SRTP keys existed: " + "; ".join(early))
    if not judged:
        raise Inconclusive("no SRTP packet arrived on any DTLS-SRTP leg: nothing to judge")
    return Evidence.of("no media before the handshakes", packets_authenticated=judged)
