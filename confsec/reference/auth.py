"""Who sent a request to the reference focus: SIP digest (SHA-256) over TLS (R2).

One `Authenticator` serves every entry point of the focus (INVITE to the factory and the
conference URIs, SUBSCRIBE to the conference state), so that they challenge and refuse in one
way, and a user name means the same thing wherever it is checked. It answers the request itself
(401 with the challenges, 403/404 on refusal) and hands back only the authenticated user name.

Digest proves the password, not the connection: the name it yields is only worth something
because the request came over TLS, which `require_tls` insists on before anything else.

The R2 defect switches that concern authentication are branches here: `accept-unauthenticated`
(no challenge at all, the From user is believed) and `digest-reveals-unknown-users` (a status
that tells an unknown user from a wrong password). The two that concern the digest arithmetic
(`accept-any-password`, `accept-replayed-nonce`) are settings of the `DigestServer`s given here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from confsec.codec.digest import DigestError, DigestServer, parse_credentials
from confsec.codec.sip import parse_uri

if TYPE_CHECKING:
    from confsec.net.incoming import IncomingRequest

log = logging.getLogger(__name__)

#: Interop relaxations of the digest, off by default, for UAs such as baresip 1.0 (libre) that
#: cannot authenticate to a SHA-256-only service:
#: - "digest-md5": challenge with SHA-256 and then MD5 (RFC 8760 §2.4: several challenges, most
#:   preferred first) and accept an answer to either;
#: - "digest-md5-only": challenge with MD5 alone. libre 1.1 (baresip 1.0's SIP stack) fails the
#:   whole 401 with ENOSYS when any of its challenges is not MD5, whatever the order, instead of
#:   using one it supports (RFC 8760 §2.4), so only this lets it authenticate.
MD5_INTEROP = frozenset({"digest-md5", "digest-md5-only"})


class Authenticator:
    """SIP digest over TLS for the focus and its event package; answers refusals itself."""

    def __init__(
        self,
        digest: DigestServer,
        md5_digest: DigestServer | None = None,
        *,
        defects: frozenset[str] = frozenset(),
        interop: frozenset[str] = frozenset(),
    ) -> None:
        self.digest = digest
        # The second (MD5) challenger of the "digest-md5" interop profiles; None otherwise.
        self.md5_digest = md5_digest if MD5_INTEROP & interop else None
        self.defects = defects
        self.interop = interop

    async def require_tls(self, req: IncomingRequest) -> bool:
        """True when `req` came over TLS; otherwise it is refused (403) and False returned."""
        if req.flow.secure:
            return True
        await req.respond(403, "SIPS required")
        return False

    async def authenticate(self, req: IncomingRequest) -> str | None:
        """SIP digest over TLS; returns the authenticated user name, or None once refused."""
        r = req.request
        if "accept-unauthenticated" in self.defects:
            from_user = parse_uri(r.from_.uri).user or "anonymous"
            return from_user
        value = r.headers.get("Authorization")
        if value is None:
            await req.respond(401, headers=self._challenges())
            return None
        result = self._digest_for(value).verify(r.method, r.uri, value)
        if not result.ok:
            if result.reason in ("stale-nonce", "unknown-nonce"):
                await req.respond(401, headers=self._challenges(result.reason == "stale-nonce"))
            else:
                # One answer for every failure: the reason (unknown user, bad response...) stays
                # in the log, or the status line would tell an attacker which users exist.
                log.info("digest refused for %s: %s", r.uri, result.reason)
                leak = "digest-reveals-unknown-users" in self.defects  # the R2 defect
                if leak and result.reason == "unknown-user":
                    await req.respond(404, "Unknown user")
                    return None
                await req.respond(403, "Forbidden")
            return None
        return result.username

    def _challenges(self, stale: bool = False) -> list[tuple[str, str]]:
        """WWW-Authenticate headers: SHA-256, then MD5 (or MD5 alone) as the interop asks."""
        servers = [self.digest] + ([self.md5_digest] if self.md5_digest is not None else [])
        if self.md5_digest is not None and "digest-md5-only" in self.interop:
            servers = [self.md5_digest]
        return [("WWW-Authenticate", d.challenge(stale=stale).to_header()) for d in servers]

    def _digest_for(self, value: str) -> DigestServer:
        """The server whose challenge `value` answers: MD5 goes to the interop one, if any."""
        if self.md5_digest is None:
            return self.digest
        try:
            algorithm = parse_credentials(value).algorithm
        except DigestError:
            return self.digest  # it reports the credentials as malformed
        return self.md5_digest if algorithm == self.md5_digest.algorithm else self.digest
