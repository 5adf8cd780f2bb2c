"""SDP (RFC 8866) with SDES key exchange, a=crypto (RFC 4568): sans-IO parse and serialise.

`parse_sdp()` reads a body into a `SessionDescription`; `to_bytes()` of a parsed, unmodified
description returns the input byte for byte, with one normalisation: line ends are always CRLF
(RFC 8866 §5); a missing line end after the last line is added. `MediaDescription.crypto`
parses the `a=crypto` values lazily into `CryptoAttribute`s, so a malformed one leaves the rest
of the description readable. Everything raised on bad input is an `SdpParseError`; everything
raised on a bad build is a `LocalProtocolError`.
"""

from ._crypto import CryptoAttribute
from ._errors import SdpParseError
from ._fields import Connection, Origin, Timing
from ._grammar import Attribute, Line
from ._model import MediaDescription, SessionDescription
from ._parser import parse_sdp
from ._suites import SRTP_SUITES, SuiteInfo

__all__ = [
    "SRTP_SUITES",
    "Attribute",
    "Connection",
    "CryptoAttribute",
    "Line",
    "MediaDescription",
    "Origin",
    "SdpParseError",
    "SessionDescription",
    "SuiteInfo",
    "Timing",
    "parse_sdp",
]
