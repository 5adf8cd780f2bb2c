"""The reference's registrar (RFC 3261 section 10): where the focus finds a user it must call.

A dial-out conference (RFC 4579 5.5, TS 24.147) calls users by their address of record; the
registrar maps it to the contact the user registered. Registration is authenticated like every
other request (SIP digest over TLS), and a user may bind only its own address of record: a
binding for someone else would let anyone redirect the calls the focus places to another user,
and with them that user's media keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confsec.codec.sip import SipParseError, parse_name_addr, parse_uri

if TYPE_CHECKING:
    from confsec.net.incoming import IncomingRequest
    from confsec.reference.auth import Authenticator

MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 600


@dataclass(frozen=True)
class Binding:
    contact: str
    """The Contact URI the user registered (what the focus's INVITE is sent to)."""
    expires_at: float


class Registrar:
    """Bindings by user name, as authenticated (never as the To header claims)."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth
        self.bindings: dict[str, Binding] = {}

    def contact(self, user: str) -> str | None:
        """The contact `user` registered, None when it has none (or it expired)."""
        b = self.bindings.get(user)
        if b is None or b.expires_at < time.monotonic():
            return None
        return b.contact

    async def handle(self, req: IncomingRequest) -> None:
        if not await self.auth.require_tls(req):
            return
        user = await self.auth.authenticate(req)
        if user is None:
            return
        r = req.request
        try:
            aor = parse_uri(r.to.uri)
        except SipParseError:
            await req.respond(400, "Bad To")
            return
        if aor.user != user:
            await req.respond(403, "Only your own address of record can be bound")
            return
        contacts = r.headers.get_all("Contact")
        if not contacts:  # a query (section 10.2.3)
            await req.respond(200, headers=self._contact_headers(user))
            return
        try:
            contact = parse_name_addr(contacts[0])
            parse_uri(contact.uri)
        except SipParseError:
            await req.respond(400, "Bad Contact")
            return
        expires = _expires(contact.params.get("expires") or r.headers.get("Expires"))
        if expires == 0:
            self.bindings.pop(user, None)
        else:
            self.bindings[user] = Binding(contact.uri, time.monotonic() + expires)
        await req.respond(200, headers=self._contact_headers(user))

    def _contact_headers(self, user: str) -> list[tuple[str, str]]:
        b = self.bindings.get(user)
        if b is None:
            return []
        left = max(0, int(b.expires_at - time.monotonic()))
        return [("Contact", f"<{b.contact}>;expires={left}")]


def _expires(value: str | None) -> int:
    try:
        return min(MAX_EXPIRES, max(0, int(value))) if value is not None else DEFAULT_EXPIRES
    except ValueError:
        return DEFAULT_EXPIRES
