"""HTTP Digest authentication as SIP uses it (RFC 3261 §22, RFC 7616, RFC 8760).

In SIP the digest-uri is the Request-URI and the method is the SIP method (the ACK and CANCEL
special cases of §22.1 are the caller's business). This package is sans-IO: the server is
handed its clock (`now`, required) so that nonce expiry follows the caller's time and can be
tested without sleeping.

Algorithms: MD5, SHA-256 and SHA-512-256 (RFC 8760), each with its `-sess` variant; qop `auth`,
`auth-int`, and no qop (the RFC 2069 legacy form, kept because old SIP devices still use it).
Everything raised on bad input is a `DigestError`.
"""

from ._client import DigestClient
from ._compute import ALGORITHMS, compute_response
from ._errors import DigestError
from ._headers import Challenge, Credentials, parse_challenge, parse_credentials
from ._server import DigestServer, VerifyReason, VerifyResult

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "DigestServer",
    "VerifyReason",
    "VerifyResult",
    "compute_response",
    "parse_challenge",
    "parse_credentials",
]
