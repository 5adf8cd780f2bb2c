"""The server side: issuing digest challenges and verifying the answers.

Sans-IO: the server is handed its clock (`now`) and never reads one itself, so that nonce
expiry is exactly what the caller's clock says, and tests can move time by hand.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from confsec.errors import ConfigError

from ._compute import canonical_algorithm, compute_response
from ._errors import DigestError
from ._headers import Challenge, parse_credentials

__all__ = ["DigestServer", "VerifyReason", "VerifyResult"]

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

    `now` is the only clock the server reads (issue times and nonce age, in seconds): required,
    so that a caller cannot end up with one the codec picked for it.
    """

    _PURGE_AT = 1024

    def __init__(
        self,
        realm: str,
        users: Mapping[str, str],
        algorithm: str = "SHA-256",
        secret: bytes | None = None,
        nonce_ttl: float = 300.0,
        *,
        now: Callable[[], float],
        qop: tuple[str, ...] = ("auth",),
        check_replay: bool = True,
        check_response: bool = True,
    ) -> None:
        canonical = canonical_algorithm(algorithm)
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
