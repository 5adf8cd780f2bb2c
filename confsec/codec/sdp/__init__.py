"""SDP (RFC 8866) with SDES a=crypto (RFC 4568) and DTLS-SRTP: sans-IO parse and serialise.

`parse_sdp()` reads a body into a `SessionDescription`; `to_bytes()` of a parsed, unmodified
description returns the input byte for byte, with one normalisation: line ends are always CRLF
(RFC 8866 §5); a missing line end after the last line is added. `MediaDescription.crypto`
parses the `a=crypto` values lazily into `CryptoAttribute`s, so a malformed one leaves the rest
of the description readable; `.fingerprints` (RFC 8122), `.setup` (RFC 4145) and `.tls_id`
(RFC 8842) do the same for DTLS-SRTP (RFC 5763, RFC 5764), falling back on the session-level
a=fingerprint and a=setup. Everything raised on bad input is an `SdpParseError`; everything
raised on a bad build is a `LocalProtocolError`.
"""

from ._crypto import CryptoAttribute
from ._dtls import (
    DTLS_SRTP_PROTOS,
    HASH_LENGTHS,
    FingerprintAttribute,
    SetupRole,
    answer_role,
    certificate_matches,
    dtls_role,
    new_tls_id,
    parse_tls_id,
)
from ._errors import SdpParseError
from ._fields import Connection, Origin, Timing
from ._grammar import Attribute, Line
from ._model import MediaDescription, SessionDescription
from ._parser import parse_sdp
from ._suites import SRTP_SUITES, SuiteInfo

__all__ = [
    "DTLS_SRTP_PROTOS",
    "HASH_LENGTHS",
    "SRTP_SUITES",
    "Attribute",
    "Connection",
    "CryptoAttribute",
    "FingerprintAttribute",
    "Line",
    "MediaDescription",
    "Origin",
    "SdpParseError",
    "SessionDescription",
    "SetupRole",
    "SuiteInfo",
    "Timing",
    "answer_role",
    "certificate_matches",
    "dtls_role",
    "new_tls_id",
    "parse_sdp",
    "parse_tls_id",
]
