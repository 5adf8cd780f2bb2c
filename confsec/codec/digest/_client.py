"""The client side: answering digest challenges for one user."""

from __future__ import annotations

import secrets
from collections import OrderedDict

from ._compute import canonical_algorithm, compute_response
from ._errors import DigestError
from ._headers import Challenge, Credentials, parse_challenge

__all__ = ["DigestClient"]


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
        if canonical_algorithm(challenge.algorithm) is None:
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
