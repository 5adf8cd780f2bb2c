"""The secure-conference policy of the reference focus (R1, R3): what an offer must carry.

A conference created over SIPS with an SRTP offer is secure, and the same policy is applied to
every later join, and to every later offer in a participant's dialog (re-INVITE, UPDATE: see
`reoffer.py`). The decision is a pure function of the offer so that it is easy to test and
so that each defect switch is one visible branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    SetupRole,
)

SUPPORTED_MEDIA = {"audio": "0", "video": "96"}  # PCMU for audio, a dynamic type for video


@dataclass(frozen=True)
class MediaChoice:
    """One accepted m-line: the offer's crypto the focus will use, or None for plain RTP."""

    index: int
    media: MediaDescription
    crypto: CryptoAttribute | None
    dtls: bool = False
    """Keyed by DTLS-SRTP (RFC 5763): the offer's a=fingerprint and a=setup, no a=crypto."""


@dataclass(frozen=True)
class PolicyDecision:
    accepted: bool
    status: int = 200
    reason: str = "OK"
    choices: tuple[MediaChoice, ...] = ()


def refuse(reason: str, status: int = 488) -> PolicyDecision:
    return PolicyDecision(False, status, reason)


def evaluate_offer(
    offer: SessionDescription,
    *,
    require_srtp: bool,
    allow_null_cipher: bool,
    suites: tuple[str, ...],
    key_management: str = "sdes",
    sdes_fallback: bool = False,
) -> PolicyDecision:
    """Pick, for every supported m-line, the first offered crypto the policy allows.

    With `key_management` "dtls-srtp" a secure line must be a DTLS-SRTP one (RFC 5764 section
    8); an SDES offer is refused, since the service keys no media that way, unless
    `sdes_fallback` (the `dtls-falls-back-to-sdes` defect) answers it with SDES after all."""
    choices: list[MediaChoice] = []
    for index, m in enumerate(offer.media):
        if m.media not in SUPPORTED_MEDIA or m.port == 0:
            continue
        if key_management == "dtls-srtp" and m.is_dtls_srtp:
            why = dtls_refusal(m)
            if why is not None:
                return refuse(f"m={m.media}: {why}")
            choices.append(MediaChoice(index, m, None, dtls=True))
            continue
        if key_management == "dtls-srtp" and "SAVP" in m.proto and not sdes_fallback:
            return refuse(f"m={m.media} offers {m.proto}: this service keys SRTP with DTLS-SRTP")
        secure_proto = "SAVP" in m.proto and not m.is_dtls_srtp
        if not secure_proto:
            if require_srtp:
                return refuse(f"m={m.media} offers {m.proto}: SRTP (RTP/SAVP) is required")
            choices.append(MediaChoice(index, m, None))
            continue
        usable = [c for c in m.crypto if c.suite in suites and (allow_null_cipher or not c.is_null)]
        if not usable:
            null = [c for c in m.crypto if c.is_null]
            why = "null encryption is not allowed" if null else "no supported crypto suite"
            return refuse(f"m={m.media}: {why}")
        choices.append(MediaChoice(index, m, usable[0]))
    if not choices:
        return refuse("no supported media stream in the offer")
    return PolicyDecision(True, choices=tuple(choices))


def dtls_refusal(m: MediaDescription) -> str | None:
    """Why a DTLS-SRTP m-line cannot be answered: no usable fingerprint (RFC 8122 section 5:
    not md2 or md5) or no role to take (RFC 5763 section 5), or None."""
    try:
        fingerprints = [f for f in m.fingerprints if f.is_acceptable_hash]
        setup = m.setup
    except SdpParseError as exc:
        return f"malformed DTLS attribute: {exc}"
    if not fingerprints:
        return "no a=fingerprint with an acceptable hash (RFC 8122)"
    if setup is None or setup == SetupRole.HOLDCONN:
        return "no a=setup role to answer (RFC 5763 section 5)"
    return None


def reoffer_refusal(
    previous: SessionDescription, offer: SessionDescription
) -> PolicyDecision | None:
    """Why a new offer in an existing dialog cannot be answered as a change of that session, or
    None. RFC 3264 section 8: a re-offer keeps every m-line of the session in its place (it may
    add lines at the end); the focus answers media-type changes and the removal of a stream it
    carries with 488, which leaves the session as it was (RFC 3261 section 14.2). The security
    of what is offered is `evaluate_offer`'s, on every offer alike."""
    if len(offer.media) < len(previous.media):
        return refuse(
            f"the offer has {len(offer.media)} m-lines where the session has "
            f"{len(previous.media)}: a re-offer keeps every m-line (RFC 3264 section 8)"
        )
    for n, (old, new) in enumerate(zip(previous.media, offer.media, strict=False), start=1):
        if old.media != new.media:
            return refuse(f"m-line {n} changes from {old.media} to {new.media}")
        if old.port != 0 and "RTP" in old.proto and new.port == 0:
            return refuse(f"m-line {n} ({old.media}) would be removed: not supported here")
    return None
