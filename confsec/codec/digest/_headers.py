"""Digest challenges (WWW-/Proxy-Authenticate) and credentials (Authorization /
Proxy-Authorization): the header values, parsed and written."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from ._compute import canonical_algorithm
from ._errors import DigestError
from ._params import WS, parse_auth_params, quote, require

__all__ = ["Challenge", "Credentials", "parse_challenge", "parse_credentials"]


@dataclass(frozen=True)
class Challenge:
    """A Digest challenge (WWW-Authenticate / Proxy-Authenticate value)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    """Canonical name when known ('MD5', 'SHA-256', ...-sess); absent on the wire means MD5."""
    qop: tuple[str, ...] = ()
    """Offered qop values, lower-case; () means the RFC 2069 legacy form."""
    opaque: str | None = None
    stale: bool = False
    """True: the nonce expired but the credentials were right, so retry without re-prompting."""
    domain: str | None = None

    def to_header(self) -> str:
        """The header value, `Digest realm="...", ...`."""
        parts = [f"realm={quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={quote(self.domain)}")
        parts.append(f"nonce={quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> Challenge:
    """Parse a WWW-Authenticate or Proxy-Authenticate value. Raises `DigestError`.

    An unknown algorithm is kept as written (not an error): a server may offer several
    challenges and the client picks one it supports.
    """
    params = parse_auth_params(value, "challenge")
    require(params, ("realm", "nonce"), "challenge")
    algorithm = params.get("algorithm", "MD5")
    qop = tuple(q for p in params.get("qop", "").split(",") if (q := p.strip(WS).lower()))
    stale = params.get("stale", "false").lower()
    if stale not in ("true", "false"):
        raise DigestError(f"bad stale value {stale[:20]!r}")
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=canonical_algorithm(algorithm) or algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=stale == "true",
        domain=params.get("domain"),
    )


@dataclass(frozen=True)
class Credentials:
    """Digest credentials (Authorization / Proxy-Authorization value). Holds no password."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    qop: str | None = None
    nc: int | None = None
    opaque: str | None = None

    def to_header(self) -> str:
        """The header value; nc as 8 hex digits, qop and algorithm as tokens (RFC 7616 §3.4)."""
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(self.realm)}",
            f"uri={quote(self.uri)}",
            f"algorithm={self.algorithm}",
            f"nonce={quote(self.nonce)}",
        ]
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        if self.cnonce is not None:
            parts.append(f"cnonce={quote(self.cnonce)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        parts.append(f"response={quote(self.response)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        return "Digest " + ", ".join(parts)


def _ext_username(value: str) -> str:
    """Decode RFC 7616 `username*` (RFC 8187 ext-value: UTF-8''percent-encoded)."""
    charset, sep, rest = value.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    if not (sep and sep2) or charset.lower() != "utf-8":
        raise DigestError("bad username* value")
    try:
        return unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise DigestError("username* is not UTF-8") from None


def parse_credentials(value: str) -> Credentials:
    """Parse an Authorization or Proxy-Authorization value. Raises `DigestError`."""
    params = parse_auth_params(value, "credentials")
    if "username*" in params:
        if "username" in params:
            raise DigestError("both username and username* in credentials")
        params["username"] = _ext_username(params["username*"])
    require(params, ("username", "realm", "nonce", "uri", "response"), "credentials")
    qop = params.get("qop")
    nc: int | None = None
    if "nc" in params:
        text = params["nc"]
        if len(text) != 8 or not all(c in "0123456789abcdefABCDEF" for c in text):
            raise DigestError(f"nc must be 8 hex digits, got {text[:20]!r}")
        nc = int(text, 16)
    if qop is not None:
        qop = qop.lower()
        require(params, ("cnonce", "nc"), "credentials with qop")
    algorithm = params.get("algorithm", "MD5")
    return Credentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=canonical_algorithm(algorithm) or algorithm,
        cnonce=params.get("cnonce"),
        qop=qop,
        nc=nc,
        opaque=params.get("opaque"),
    )
