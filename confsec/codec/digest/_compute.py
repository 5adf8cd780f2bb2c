"""The request-digest computation (RFC 7616 §3.4.1) and the algorithms it supports (RFC 8760)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ._errors import DigestError

__all__ = ["ALGORITHMS", "canonical_algorithm", "compute_response"]

#: Canonical algorithm name -> hashlib name. Lookups are case-insensitive (RFC 7616 §3.3).
ALGORITHMS: Mapping[str, str] = {
    "MD5": "md5",
    "MD5-sess": "md5",
    "SHA-256": "sha256",
    "SHA-256-sess": "sha256",
    "SHA-512-256": "sha512_256",
    "SHA-512-256-sess": "sha512_256",
}
_CANONICAL = {name.upper(): name for name in ALGORITHMS}


def canonical_algorithm(name: str) -> str | None:
    return _CANONICAL.get(name.upper())


def _hex(hash_name: str, data: bytes) -> str:
    return hashlib.new(hash_name, data).hexdigest()


def compute_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: int | str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest (RFC 7616 §3.4.1), lower-case hex.

    `nc` is an int (formatted as 8 hex digits) or the 8 digits as sent. With `qop` None the
    RFC 2069 form `H(HA1:nonce:HA2)` is used. `body` only matters for qop `auth-int`.
    Raises `DigestError` for an unsupported algorithm or qop, or missing cnonce/nc.
    """
    canonical = canonical_algorithm(algorithm)
    if canonical is None:
        raise DigestError(f"unsupported digest algorithm {algorithm[:30]!r}")
    hash_name = ALGORITHMS[canonical]

    def h(text: str) -> str:
        return _hex(hash_name, text.encode("utf-8", "surrogatepass"))

    ha1 = h(f"{username}:{realm}:{password}")
    if canonical.endswith("-sess"):
        if not cnonce:
            raise DigestError(f"{canonical} needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{_hex(hash_name, body)}")
    elif qop is None or qop == "auth":
        ha2 = h(f"{method}:{uri}")
    else:
        raise DigestError(f"unsupported qop {qop[:30]!r}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise DigestError("qop needs nc and cnonce")
    nc_text = f"{nc:08x}" if isinstance(nc, int) else nc
    return h(f"{ha1}:{nonce}:{nc_text}:{cnonce}:{qop}:{ha2}")
