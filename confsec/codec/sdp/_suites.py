"""The SRTP crypto suites an a=crypto attribute can name (RFC 4568, RFC 7714).

A table of facts rather than code: the a=crypto parser checks key and salt lengths against it,
and the media side looks up its pylibsrtp profile by the name kept here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SRTP_SUITES", "SuiteInfo"]


@dataclass(frozen=True)
class SuiteInfo:
    """What the suite needs to know about an SRTP crypto suite named in a=crypto."""

    name: str
    key_len: int
    """Master key length in bytes."""
    salt_len: int
    """Master salt length in bytes."""
    tag_len: int
    """SRTP authentication tag length in bytes."""
    null_cipher: bool
    """True when the suite does not encrypt (RFC 4568 NULL_* suites)."""
    pylibsrtp_profile: str | None
    """Name of the `pylibsrtp.Policy` profile constant, None when pylibsrtp has no profile.

    A name rather than the value keeps this module free of the media stack."""
    rfc: str


SRTP_SUITES: dict[str, SuiteInfo] = {
    info.name: info
    for info in (
        SuiteInfo(
            "AES_CM_128_HMAC_SHA1_80", 16, 14, 10, False, "SRTP_PROFILE_AES128_CM_SHA1_80", "4568"
        ),
        SuiteInfo(
            "AES_CM_128_HMAC_SHA1_32", 16, 14, 4, False, "SRTP_PROFILE_AES128_CM_SHA1_32", "4568"
        ),
        SuiteInfo("AEAD_AES_128_GCM", 16, 12, 16, False, "SRTP_PROFILE_AEAD_AES_128_GCM", "7714"),
        SuiteInfo("AEAD_AES_256_GCM", 32, 12, 16, False, "SRTP_PROFILE_AEAD_AES_256_GCM", "7714"),
        SuiteInfo("NULL_HMAC_SHA1_80", 16, 14, 10, True, None, "4568"),
        SuiteInfo("NULL_HMAC_SHA1_32", 16, 14, 4, True, None, "4568"),
    )
}
