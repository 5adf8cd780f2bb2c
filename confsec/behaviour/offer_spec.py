"""What a participant offers, as the Gherkin lines name it (`OfferSpec`).

Kept apart from the participant that builds the offer so that steps and probes can name an
offer without the participant's machinery; `confsec.behaviour.participant` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["NULL_OFFERS", "OfferSpec"]

NULL_OFFERS = {"NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32"}


@dataclass(frozen=True)
class OfferSpec:
    """What a participant offers: which media, SRTP or not, which suite, null variants."""

    secure: bool = True
    suite: str = "AES_CM_128_HMAC_SHA1_80"
    media: tuple[str, ...] = ("audio",)
    session_params: tuple[str, ...] = ()
    common: bool = False
    """Also offer to receive the group-keyed common stream (R5), if the target claims it."""
    keying: str = "auto"
    """'auto': DTLS-SRTP where the target's key management is it, SDES otherwise; 'sdes':
    a=crypto whatever the target claims (the SDES offer a DTLS-only target must refuse);
    'dtls-mismatched-fingerprint': an a=fingerprint that is not of the certificate presented."""
    rtcp_mux: bool = True
    """Offer rtcp-mux (RFC 5761) beside the leg's own RTCP port; False: the own port only, so
    that the target's RTCP on a port of its own (RFC 3605 a=rtcp) is exercised too."""

    @classmethod
    def named(cls, name: str) -> OfferSpec:
        """Gherkin names: 'secure', 'plain RTP', a null suite name, or 'UNENCRYPTED_SRTP'."""
        if name == "secure":
            return cls()
        if name == "plain RTP":
            return cls(secure=False)
        if name in NULL_OFFERS:
            return cls(suite=name)
        if name in ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP"):
            return cls(session_params=(name,))
        if name == "SDES":
            return cls(keying="sdes")
        if name == "mismatched fingerprint":  # DTLS-SRTP: a=fingerprint of another certificate
            return cls(keying="dtls-mismatched-fingerprint")
        raise ValueError(f"unknown offer {name!r}")

    @classmethod
    def from_phrase(cls, rest: str) -> OfferSpec:
        """The tail of 'has created a secure conference ...': 'using <suite>', 'with audio and
        video', or nothing."""
        words = rest.split()
        spec = cls()
        if "using" in words:
            spec = cls(suite=words[words.index("using") + 1])
        if "video" in words:
            spec = cls(suite=spec.suite, media=("audio", "video"))
        if "common" in words:  # '... with the common stream'
            spec = cls(suite=spec.suite, media=spec.media, common=True)
        if "rtcp-mux" in words and "without" in words:  # '... without rtcp-mux'
            spec = replace(spec, rtcp_mux=False)
        return spec
