"""HTTP Digest authentication as SIP uses it (RFC 3261 §22, RFC 7616, RFC 8760).

In SIP the digest-uri is the Request-URI and the method is the SIP method (the ACK and CANCEL
special cases of §22.1 are the caller's business). This module is sans-IO: the server is given
its clock (`now`) so that nonce expiry can be tested without sleeping.

Algorithms: MD5, SHA-256 and SHA-512-256 (RFC 8760), each with its `-sess` variant; qop `auth`,
`auth-int`, and no qop (the RFC 2069 legacy form, kept because old SIP devices still use it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from confsec.errors import ConfigError, RemoteProtocolError

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


class DigestError(RemoteProtocolError):
    """A challenge or credentials value that is malformed or cannot be answered."""


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

VerifyReason = Literal[
    "no-credentials",
    "unknown-user",
    "bad-response",
    "unknown-nonce",
    "stale-nonce",
    "replayed-nonce-count",
    "wrong-realm",
    "wrong-algorithm",
    "malformed",
    "uri-mismatch",
]


def _canonical_algorithm(name: str) -> str | None:
    return _CANONICAL.get(name.upper())


def _hex(hash_name: str, data: bytes) -> str:
    return hashlib.new(hash_name, data).hexdigest()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- auth-param lists ------------------------------------------------------------------------

_WS = " \t\r\n"


def _parse_auth_params(value: str, what: str) -> dict[str, str]:
    """Parse `Digest name=value, name="quoted", ...` into a dict with lower-case names.

    Tolerant of spacing around `=` and `,`, of empty list elements, and of unquoted values
    where a quoted-string is expected (seen in the wild); strict about duplicates (RFC 7235
    §2.1: each parameter name only once) and about anything that is not a parameter.
    """
    n = len(value)
    i = 0
    while i < n and value[i] in _WS:
        i += 1
    start = i
    while i < n and value[i] not in _WS:
        i += 1
    scheme = value[start:i]
    if scheme.lower() != "digest":
        raise DigestError(f"{what} is not a Digest one (scheme {scheme[:20]!r})", offset=start)
    if i == n:
        raise DigestError(f"{what} has no parameters", offset=i)
    params: dict[str, str] = {}
    while True:
        while i < n and (value[i] in _WS or value[i] == ","):
            i += 1
        if i == n:
            break
        start = i
        while i < n and value[i] not in _WS and value[i] not in '=,"':
            i += 1
        name = value[start:i].lower()
        if not name or not name.isascii():
            raise DigestError(f"bad parameter name in {what}", offset=start)
        while i < n and value[i] in _WS:
            i += 1
        if i == n or value[i] != "=":
            raise DigestError(f"expected '=' after {name!r} in {what}", offset=i)
        i += 1
        while i < n and value[i] in _WS:
            i += 1
        if i < n and value[i] == '"':
            out: list[str] = []
            quote_at = i
            i += 1
            while True:
                if i >= n:
                    raise DigestError(f"unterminated quoted-string in {what}", offset=quote_at)
                ch = value[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "\\" and i + 1 < n:
                    out.append(value[i + 1])
                    i += 2
                    continue
                out.append(ch)
                i += 1
            param = "".join(out)
        else:
            vstart = i
            while i < n and value[i] not in _WS and value[i] not in ',"':
                i += 1
            param = value[vstart:i]
            if not param:
                raise DigestError(f"empty value for {name!r} in {what}", offset=vstart)
        if name in params:
            raise DigestError(f"parameter {name!r} repeated in {what}", offset=start)
        params[name] = param
        while i < n and value[i] in _WS:
            i += 1
        if i < n and value[i] != ",":
            raise DigestError(f"expected ',' in {what}", offset=i)
    return params


def _require(params: dict[str, str], names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if n not in params]
    if missing:
        raise DigestError(f"{what} lacks {', '.join(missing)}")


# -- challenge ---------------------------------------------------------------------------------


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
        parts = [f"realm={_quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> Challenge:
    """Parse a WWW-Authenticate or Proxy-Authenticate value. Raises `DigestError`.

    An unknown algorithm is kept as written (not an error): a server may offer several
    challenges and the client picks one it supports.
    """
    params = _parse_auth_params(value, "challenge")
    _require(params, ("realm", "nonce"), "challenge")
    algorithm = params.get("algorithm", "MD5")
    qop = tuple(q for p in params.get("qop", "").split(",") if (q := p.strip(_WS).lower()))
    stale = params.get("stale", "false").lower()
    if stale not in ("true", "false"):
        raise DigestError(f"bad stale value {stale[:20]!r}")
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=_canonical_algorithm(algorithm) or algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=stale == "true",
        domain=params.get("domain"),
    )


# -- credentials -------------------------------------------------------------------------------


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
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"uri={_quote(self.uri)}",
            f"algorithm={self.algorithm}",
            f"nonce={_quote(self.nonce)}",
        ]
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        parts.append(f"response={_quote(self.response)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
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
    params = _parse_auth_params(value, "credentials")
    if "username*" in params:
        if "username" in params:
            raise DigestError("both username and username* in credentials")
        params["username"] = _ext_username(params["username*"])
    _require(params, ("username", "realm", "nonce", "uri", "response"), "credentials")
    qop = params.get("qop")
    nc: int | None = None
    if "nc" in params:
        text = params["nc"]
        if len(text) != 8 or not all(c in "0123456789abcdefABCDEF" for c in text):
            raise DigestError(f"nc must be 8 hex digits, got {text[:20]!r}")
        nc = int(text, 16)
    if qop is not None:
        qop = qop.lower()
        _require(params, ("cnonce", "nc"), "credentials with qop")
    algorithm = params.get("algorithm", "MD5")
    return Credentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=_canonical_algorithm(algorithm) or algorithm,
        cnonce=params.get("cnonce"),
        qop=qop,
        nc=nc,
        opaque=params.get("opaque"),
    )


# -- the computation ---------------------------------------------------------------------------


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
    canonical = _canonical_algorithm(algorithm)
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


# -- client ------------------------------------------------------------------------------------


class DigestClient:
    """Answers challenges for one user: fresh cnonce each time, nc counting up per nonce."""

    _MAX_NONCES = 64

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._nc: OrderedDict[str, int] = OrderedDict()

    def __repr__(self) -> str:
        return f"DigestClient(username={self.username!r}, password=<hidden>)"

    def credentials(
        self, challenge: Challenge | str, method: str, uri: str, body: bytes = b""
    ) -> Credentials:
        """The credentials answering `challenge` for a request `method uri`."""
        if isinstance(challenge, str):
            challenge = parse_challenge(challenge)
        if _canonical_algorithm(challenge.algorithm) is None:
            raise DigestError(f"unsupported digest algorithm {challenge.algorithm[:30]!r}")
        if not challenge.qop:
            qop = None
        elif "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        else:
            raise DigestError(f"no supported qop in {challenge.qop!r}")
        nc = cnonce = None
        if qop is not None or challenge.algorithm.endswith("-sess"):
            cnonce = secrets.token_hex(16)
        if qop is not None:
            nc = self._nc.pop(challenge.nonce, 0) + 1
            self._nc[challenge.nonce] = nc
            while len(self._nc) > self._MAX_NONCES:
                self._nc.popitem(last=False)
        response = compute_response(
            challenge.algorithm,
            self.username,
            challenge.realm,
            self._password,
            method,
            uri,
            challenge.nonce,
            nc,
            cnonce,
            qop,
            body,
        )
        return Credentials(
            username=self.username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            algorithm=challenge.algorithm,
            cnonce=cnonce,
            qop=qop,
            nc=nc,
            opaque=challenge.opaque,
        )

    def authorize(
        self, challenge: Challenge | str, method: str, uri: str, body: bytes = b""
    ) -> str:
        """The Authorization (or Proxy-Authorization) header value answering `challenge`."""
        return self.credentials(challenge, method, uri, body).to_header()


# -- server ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """What `DigestServer.verify` concluded."""

    ok: bool
    reason: VerifyReason | None = None
    """Why it failed (None when ok)."""
    username: str | None = None
    """The authenticated user when ok; the claimed one (if any) otherwise."""

    @property
    def stale(self) -> bool:
        """True when the answer should be a new challenge with stale=TRUE (RFC 7616 §3.3)."""
        return self.reason == "stale-nonce"


_NONCE_LEN = 8 + 8 + 16  # timestamp (double) + salt + truncated HMAC-SHA-256


class DigestServer:
    """Issues Digest challenges and checks the answers, for the reference server and fakes.

    Nonces carry their issue time and an HMAC over it (keyed by `secret`), so they need no
    server-side table to be checked, a forged or altered nonce is refused, and one is stale
    once `nonce_ttl` seconds old. Each (nonce, nc) is accepted once and nc must increase.
    `check_replay=False` and `check_response=False` are defect switches for the reference
    deployment (accept replays; accept any response), so that the suite can show it catches
    them. The checks run in this order: parse, realm, algorithm, nonce signature, user, uri,
    qop, response, age, replay -- a wrong response is reported as such even on a stale nonce,
    since stale=TRUE must only be sent with a valid digest.
    """

    _PURGE_AT = 1024

    def __init__(
        self,
        realm: str,
        users: Mapping[str, str],
        algorithm: str = "SHA-256",
        secret: bytes | None = None,
        nonce_ttl: float = 300.0,
        now: Callable[[], float] = time.monotonic,
        *,
        qop: tuple[str, ...] = ("auth",),
        check_replay: bool = True,
        check_response: bool = True,
    ) -> None:
        canonical = _canonical_algorithm(algorithm)
        if canonical is None:
            raise ConfigError(f"unsupported digest algorithm {algorithm!r}")
        self.realm = realm
        self._users = users
        self.algorithm = canonical
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.nonce_ttl = nonce_ttl
        self._now = now
        self.qop = qop
        self.check_replay = check_replay
        self.check_response = check_response
        self._seen: dict[str, tuple[float, int]] = {}  # nonce -> (issued, highest nc)
        self._purge_at = self._PURGE_AT
        self._purged = now()

    def __repr__(self) -> str:
        return (
            f"DigestServer(realm={self.realm!r}, algorithm={self.algorithm!r}, "
            f"users=<{len(self._users)} hidden>)"
        )

    # nonces
    def _mac(self, stamp_and_salt: bytes) -> bytes:
        msg = self.realm.encode("utf-8", "surrogatepass") + b"\x00" + stamp_and_salt
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:16]

    def new_nonce(self) -> str:
        """A fresh signed nonce (URL-safe base64, no padding)."""
        body = struct.pack(">d", self._now()) + secrets.token_bytes(8)
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def _nonce_issued(self, nonce: str) -> float | None:
        """The issue time if `nonce` is one of ours, else None."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        if not hmac.compare_digest(raw[16:], self._mac(raw[:16])):
            return None
        return float(struct.unpack(">d", raw[:8])[0])

    def challenge(self, stale: bool = False) -> Challenge:
        """A new challenge with a fresh nonce."""
        return Challenge(
            realm=self.realm,
            nonce=self.new_nonce(),
            algorithm=self.algorithm,
            qop=self.qop,
            stale=stale,
        )

    def verify(
        self, method: str, uri: str, credentials_value: str | None, *, body: bytes = b""
    ) -> VerifyResult:
        """Check an Authorization value sent with request `method uri` (and `body`)."""
        if credentials_value is None or not credentials_value.strip():
            return VerifyResult(False, "no-credentials")
        try:
            creds = parse_credentials(credentials_value)
        except DigestError:
            return VerifyResult(False, "malformed")
        user = creds.username
        if creds.realm != self.realm:
            return VerifyResult(False, "wrong-realm", user)
        if creds.algorithm != self.algorithm:
            return VerifyResult(False, "wrong-algorithm", user)
        issued = self._nonce_issued(creds.nonce)
        if issued is None:
            return VerifyResult(False, "unknown-nonce", user)
        password = self._users.get(user)
        if password is None:
            return VerifyResult(False, "unknown-user", user)
        if creds.uri != uri:
            return VerifyResult(False, "uri-mismatch", user)
        if (creds.qop is None) != (not self.qop) or (creds.qop and creds.qop not in self.qop):
            return VerifyResult(False, "malformed", user)
        if self.check_response:
            try:
                expected = compute_response(
                    self.algorithm,
                    user,
                    self.realm,
                    password,
                    method,
                    uri,
                    creds.nonce,
                    creds.nc,
                    creds.cnonce,
                    creds.qop,
                    body,
                )
            except DigestError:
                return VerifyResult(False, "malformed", user)
            given = creds.response.lower().encode("utf-8", "surrogatepass")
            if not hmac.compare_digest(expected.encode("ascii"), given):
                return VerifyResult(False, "bad-response", user)
        now = self._now()
        if now - issued > self.nonce_ttl:
            return VerifyResult(False, "stale-nonce", user)
        if self.check_replay:
            nc = creds.nc if creds.nc is not None else 1
            _, last = self._seen.get(creds.nonce, (issued, 0))
            if nc <= last:
                return VerifyResult(False, "replayed-nonce-count", user)
            self._seen[creds.nonce] = (issued, nc)
            size = len(self._seen)
            if size > self._purge_at or (
                size > self._PURGE_AT and now - self._purged > self.nonce_ttl
            ):
                self._purge(now)
        return VerifyResult(True, None, user)

    def _purge(self, now: float) -> None:
        """Forget counters of nonces that are stale anyway (they can no longer be accepted).

        The next purge waits until the table has doubled or a nonce lifetime has passed: with
        more live nonces than `_PURGE_AT` (a busy service within one nonce lifetime) a fixed
        threshold would scan the whole table on every request, and the focus slowed down as it
        served."""
        self._seen = {n: s for n, s in self._seen.items() if now - s[0] <= self.nonce_ttl}
        self._purge_at = max(self._PURGE_AT, 2 * len(self._seen))
        self._purged = now
