"""Who a request is authorised as, and who may join a members-only conference (R2, R7).

Authorisation rests on who the request authenticated as: the digest user name the focus's
`Authenticator` verified over TLS, which the TLS client certificate also vouches for where mutual
TLS is on. What a request merely shows is never trusted: not the From URI (any UA writes any
From, RFC 3261 8.1.1.3), not P-Asserted-Identity (RFC 3325 9.1: only an entity inside the trust
domain may assert an identity, and a user agent never is), not the From display name. The focus
and the event notifier ask `authorised_user` so that both decide alike.

Members-only conferences (`@pics:restricted_membership`): the creator names the members in the
creation INVITE with an RFC 5366 recipient list (`confsec.codec.recipient_list`). The reference
takes the list as the membership and does not dial out to it (RFC 5366 5 has the conference
server INVITE the recipients); the members join by dialling in to the conference URI, and
anyone else, however well authenticated, is refused with 403. Entries outside the service's
domain cannot authenticate here and are left out.

The defect switches are the ways to get it wrong, each a branch of `authorised_user` for one
entry point (`subscribe`: the event notifier; `join`: the members-only check): authorising by the
From URI's user (`*-authorises-from`), by a P-Asserted-Identity the client sent
(`*-authorises-pai`), or by the From display name taken as a user name
(`*-authorises-display-name`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from confsec.codec.recipient_list import split_invite_body
from confsec.codec.sip import SipParseError, parse_name_addr, parse_uri

if TYPE_CHECKING:
    from confsec.codec.sip import Request
    from confsec.reference.model import Conference

log = logging.getLogger(__name__)

Entry = Literal["subscribe", "join"]


def authorised_user(
    request: Request, authenticated: str, defects: frozenset[str], entry: Entry
) -> str:
    """The user name `request` is authorised as at `entry`: the authenticated one."""
    if f"{entry}-authorises-pai" in defects:
        claimed = _user_of(request.headers.get("P-Asserted-Identity"))
        if claimed:
            return claimed
    if f"{entry}-authorises-display-name" in defects:
        try:
            display = (request.from_.display or "").strip()
        except SipParseError:
            display = ""
        if display:
            return display.lower()
    if f"{entry}-authorises-from" in defects:
        claimed = _user_of(request.headers.get("From"))
        if claimed:
            return claimed
    return authenticated


def offer_body(request: Request) -> bytes:
    """The SDP offer of an INVITE, from a multipart body if it is one (RFC 5366). Raises
    `RecipientListError` for a malformed multipart body or recipient list."""
    return split_invite_body(request.headers.get("Content-Type"), request.body).sdp


def listed_members(request: Request, creator: str, domain: str) -> frozenset[str] | None:
    """The user names of a conference created by `request`: the creator and the users its
    recipient list names in `domain`; None when it names none (the conference is open to
    every authenticated user). The body was validated by `offer_body` already."""
    recipients = split_invite_body(request.headers.get("Content-Type"), request.body).recipients
    if recipients is None:
        return None
    members = {creator}
    for uri in recipients:
        try:
            parsed = parse_uri(uri)
        except SipParseError:
            log.info("recipient %r is not a SIP URI: left out of the membership", uri)
            continue
        if parsed.user and parsed.host.lower() == domain.lower():
            members.add(parsed.user)
        else:
            log.info("recipient %s is outside %s: left out of the membership", uri, domain)
    return frozenset(members)


def join_refusal(
    conf: Conference, request: Request, user: str, defects: frozenset[str]
) -> str | None:
    """Why `user` (authenticated) may not join `conf`, or None: a members-only conference
    admits its members alone, judged by who the request authenticated as."""
    if conf.members is None:
        return None
    if authorised_user(request, user, defects, "join") in conf.members:
        return None
    return "Only the members of this conference may join it"


def _user_of(value: str | None) -> str | None:
    """The user part of the URI in a From or P-Asserted-Identity value (first entry)."""
    if not value:
        return None
    for text in (value, value.split(",")[0]):  # P-Asserted-Identity may list two (RFC 3325)
        try:
            return parse_uri(parse_name_addr(text.strip()).uri).user or None
        except SipParseError:
            continue
    return None
