"""Defect switches of the embedded reference deployment.

Each switch makes the reference non-conformant in exactly one way. The suite is only worth
something if every check fails on its matching defect: `tests/test_self_validation.py` runs the
scenarios of `requirement` with each switch on and pins that they fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from confsec.errors import ConfigError


@dataclass(frozen=True)
class Defect:
    name: str
    requirement: str
    description: str


DEFECTS: tuple[Defect, ...] = (
    # R1: ad hoc secure conference creation
    Defect(
        "factory-ignores-secure",
        "R1",
        "the factory ignores the secure signal: it answers a SIPS/SAVP creation with plain RTP",
    ),
    Defect(
        "no-isfocus", "R1", "the focus answers creation without a conference URI marked ;isfocus"
    ),
    Defect(
        "policy-not-applied",
        "R1",
        "the secure policy is not applied to later joins: a plain RTP join is admitted",
    ),
    # R2: authentication of participants and service
    Defect("accept-unauthenticated", "R2", "requests without credentials are admitted"),
    Defect(
        "accept-any-password", "R2", "the digest challenge is issued but any response is accepted"
    ),
    Defect(
        "accept-replayed-nonce",
        "R2",
        "a replayed (nonce, nonce-count) is accepted: no replay protection",
    ),
    Defect("wrong-domain-cert", "R2", "the service presents a certificate for another domain"),
    Defect(
        "no-client-cert-required",
        "R2",
        "mutual TLS is claimed but a client without a certificate is admitted",
    ),
    # R3: media protection
    Defect("accept-plain-rtp", "R3", "RTP/AVP offers are accepted, at creation and on join"),
    Defect("accept-null-cipher", "R3", "NULL_HMAC_SHA1_* and UNENCRYPTED_SRTP offers are accepted"),
    Defect(
        "mixer-sends-plain-rtp",
        "R3",
        "the mixer sends plain RTP to participants although SRTP was negotiated",
    ),
    Defect(
        "mixer-mixes-unauthenticated",
        "R3",
        "the mixer mixes packets that fail SRTP authentication (plain RTP) into the output",
    ),
    # R4: distinct key streams
    Defect(
        "reuse-key-across-participants",
        "R4",
        "the focus sends to every participant with one key, salt and SSRC",
    ),
    Defect(
        "reuse-key-across-directions",
        "R4",
        "the focus sends back with the participant's own key and SSRC",
    ),
    Defect(
        "reuse-key-across-media",
        "R4",
        "the focus uses one key, salt and SSRC for audio and video of a participant",
    ),
)

BY_NAME: dict[str, Defect] = {d.name: d for d in DEFECTS}


def parse_defects(names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Validate switch names given on the command line; unknown ones are a usage error."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ConfigError(
            f"unknown defect switch {', '.join(unknown)}; `confsec list defects` shows the "
            f"{len(DEFECTS)} switches"
        )
    return frozenset(names)
