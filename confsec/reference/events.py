"""The conference event package of the reference focus (RFC 4575 over RFC 6665), secured (R7).

What makes it secure, and what each defect switch undoes:

- SUBSCRIBE is authenticated with the focus's own digest over TLS and authorised: only a user
  with a leg in that conference may subscribe; anyone else gets 401/403 and no state at all
  (`subscribe-without-auth` admits anyone, with the state). The user is the one that
  authenticated, never the one From, P-Asserted-Identity or the display name claims
  (`subscribe-authorises-from`, `-pai` and `-display-name` believe them, see members.py).
- NOTIFY goes back only over the TLS connection the SUBSCRIBE came on; the subscriber's Contact
  is never dialled, since it may name plain UDP/TCP (`notify-plain-transport` honours a plain
  Contact). When that connection is gone, the subscription ends instead of falling back.
- The identities in the state are the authenticated user names, not what From claims
  (`identity-from-header` shows the From display name and URI).
- Membership is what authorises a subscription, so it ends with the membership: when a user's
  last leg leaves (BYE, or vanished), its subscriptions end with a final NOTIFY carrying
  `Subscription-State: terminated;reason=rejected` (RFC 6665 4.1.3: the authorization policy
  changed, do not re-subscribe) and no state, and are forgotten; a new SUBSCRIBE from it is
  refused like any non-member's (`leaver-keeps-subscription` keeps notifying the leaver;
  `subscribe-authorises-past-participants` lets it subscribe again).

The focus calls `handle` for SUBSCRIBE and `joined`/`left` as legs come and go; everything else
about the package lives here. It is handed the focus's `Authenticator` and a lookup of the
conferences in progress, not the focus itself, so that it authenticates exactly as the focus
does and knows nothing else of it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confsec.codec.conference_info import CONTENT_TYPE, ConferenceInfo, Endpoint, User
from confsec.codec.sip import parse_uri
from confsec.errors import ConfsecError
from confsec.net.dialog import Dialog
from confsec.reference import leaky
from confsec.reference.auth import Authenticator
from confsec.reference.members import authorised_user
from confsec.reference.model import Conference, ConferenceLookup, Leg

if TYPE_CHECKING:
    from confsec.codec.sip import Request
    from confsec.net.flow import Flow
    from confsec.net.incoming import IncomingRequest
    from confsec.net.ua import UserAgent

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 600
NOTIFY_TIMEOUT = 8.0


@dataclass
class Member:
    """How one leg appears in the conference state."""

    entity: str
    display: str | None
    endpoint: str


@dataclass
class Subscription:
    conference_id: str
    user: str
    ua: UserAgent
    """The focus's user agent the subscription came in on: NOTIFYs go out through it."""
    dialog: Dialog
    contact: str
    expires: int
    version: int = 0


@dataclass
class _ConferenceState:
    members: dict[str, Member] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    version: int = 0
    ever: set[str] = field(default_factory=set)
    """Every user that ever had a leg here: only the past-participants defect reads it."""


class ConferenceEvents:
    """Subscriptions and notifications of every conference of one focus."""

    def __init__(
        self,
        auth: Authenticator,
        conferences: ConferenceLookup,
        domain: str,
        defects: frozenset[str] = frozenset(),
    ) -> None:
        self.auth = auth
        self.conferences = conferences
        self.domain = domain
        """The service domain the members' identities are in."""
        self.defects = defects
        self.states: dict[str, _ConferenceState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.ua: UserAgent | None = None
        """The focus's user agent: subscriptions come in and NOTIFYs go out through it."""

    def watch(self, ua: UserAgent) -> None:
        """Serve subscriptions on `ua` (the focus's)."""
        self.ua = ua

    # -- hooks from the focus ------------------------------------------------------------------

    def joined(
        self, conf: Conference, leg: Leg, request: Request, member: Member | None = None
    ) -> None:
        """`leg` joined by `request` (its INVITE, or the focus's own when it called the user);
        `member` overrides how the state names it (a dial-out defect's claimed identity)."""
        state = self.states.setdefault(conf.conference_id, _ConferenceState())
        member = member or self._member(leg, request)
        state.members[leg.leg_id] = member
        state.ever.add(leg.user)
        self._broadcast(conf, (_user(member, "full"),))

    def left(self, conf: Conference, leg: Leg) -> None:
        state = self.states.get(conf.conference_id)
        if state is None:
            return
        member = state.members.pop(leg.leg_id, None)
        if not any(other.user == leg.user for other in conf.legs.values()):
            self._end_subscriptions_of(leg.user, state)
        if member is not None:
            still_there = any(m.entity == member.entity for m in state.members.values())
            self._broadcast(conf, (_user(member, "full" if still_there else "deleted"),))
        if not conf.legs:
            for sub in state.subscriptions:
                self._spawn(self._notify(sub, None, "terminated;reason=noresource"))
            self.states.pop(conf.conference_id, None)

    def _end_subscriptions_of(self, user: str, state: _ConferenceState) -> None:
        """`user` is no longer a member: no more state for it, however it subscribed."""
        if "leaver-keeps-subscription" in self.defects:
            return  # the defect: the subscription outlives the membership that authorised it
        for sub in [s for s in state.subscriptions if s.user == user]:
            state.subscriptions.remove(sub)  # before the others hear of the leave
            self._spawn(self._final_notify(sub, "terminated;reason=rejected"))

    async def _final_notify(self, sub: Subscription, state: str) -> None:
        await self._notify(sub, None, state)
        self._drop(sub)

    async def handle(self, req: IncomingRequest) -> None:
        """A SUBSCRIBE out of dialog (RFC 6665 4.2)."""
        r = req.request
        event = (r.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "conference":
            await req.respond(489, "Bad Event", headers=[("Allow-Events", "conference")])
            return
        if not await self.auth.require_tls(req):
            return
        if "subscribe-without-auth" in self.defects:
            user = parse_uri(r.from_.uri).user or "anonymous"
        else:
            user = await self.auth.authenticate(req)
            if user is None:
                return
            # Authorised as who it authenticated as, never as who it claims (members.py).
            user = authorised_user(r, user, self.defects, "subscribe")
        try:
            uri = parse_uri(r.uri)
        except ConfsecError:
            await req.respond(400, "Bad Request-URI")
            return
        conf = self.conferences(uri.user or "")
        if conf is None:
            await req.respond(404, "No such conference")
            return
        participants = {leg.user for leg in conf.legs.values()}
        if "subscribe-authorises-past-participants" in self.defects:
            known = self.states.get(conf.conference_id)
            participants |= known.ever if known else set()
        if user not in participants and "subscribe-without-auth" not in self.defects:
            await req.respond(403, "Only participants may subscribe to this conference")
            return
        if self.ua is None:
            await req.respond(503, "Conference events are not served yet")
            return
        expires = _expires(r.headers.get("Expires"))
        await req.respond(200, headers=[("Expires", str(expires))])
        dialog = self._dialog(self.ua, req)
        sub = Subscription(
            conf.conference_id, user, self.ua, dialog, r.headers.get("Contact") or "", expires
        )
        state = self.states.setdefault(conf.conference_id, _ConferenceState())
        if expires == 0:
            self._spawn(self._notify(sub, self._full(conf), "terminated;reason=timeout"))
            return
        state.subscriptions.append(sub)
        dialog.on_request = self._in_dialog(conf, sub)
        self._spawn(self._notify(sub, self._full(conf), f"active;expires={expires}"))

    # -- state ---------------------------------------------------------------------------------

    def _member(self, leg: Leg, request: Request) -> Member:
        domain = self.domain
        endpoint = f"sips:{leg.leg_id.rsplit('/', 1)[-1]}@{domain}"
        if "identity-from-header" in self.defects:
            from_ = request.from_
            return Member(from_.uri.split(";")[0], from_.display, endpoint)
        return Member(f"sips:{leg.user}@{domain}", leg.user, endpoint)

    def _full(self, conf: Conference) -> ConferenceInfo:
        state = self.states.setdefault(conf.conference_id, _ConferenceState())
        users = tuple(_user(m, "full") for m in state.members.values())
        return ConferenceInfo(
            entity=conf.uri,
            version=0,
            state="full",
            display_text=f"conference of {conf.creator}",
            user_count=len(users),
            active=True,
            users=users,
        )

    def _broadcast(self, conf: Conference, users: tuple[User, ...]) -> None:
        state = self.states.get(conf.conference_id)
        if state is None:
            return
        count = len({m.entity for m in state.members.values()})
        update = ConferenceInfo(conf.uri, 0, "partial", user_count=count, users=users)
        for sub in list(state.subscriptions):
            self._spawn(self._notify(sub, update, f"active;expires={sub.expires}"))

    # -- SIP -----------------------------------------------------------------------------------

    def _dialog(self, ua: UserAgent, req: IncomingRequest) -> Dialog:
        """The subscription's dialog (RFC 6665 4.1.2.1), bound to the request's TLS flow."""
        dialog = Dialog.uas(
            ua,
            req.request,
            req.flow,
            local_tag=req.to_tag,
            local_seq=secrets.randbelow(2**16) + 1,
            secure=True,
        )
        ua.add_dialog(dialog)
        return dialog

    def _in_dialog(self, conf: Conference, sub: Subscription):
        async def handler(req: IncomingRequest) -> None:
            if req.method != "SUBSCRIBE":
                await req.respond(405)
                return
            expires = _expires(req.request.headers.get("Expires"))
            await req.respond(200, headers=[("Expires", str(expires))])
            if expires == 0:
                self._drop(sub)
                self._spawn(self._notify(sub, self._full(conf), "terminated;reason=timeout"))
            else:
                sub.expires = expires
                self._spawn(self._notify(sub, self._full(conf), f"active;expires={expires}"))

        return handler

    def _drop(self, sub: Subscription) -> None:
        state = self.states.get(sub.conference_id)
        if state is not None and sub in state.subscriptions:
            state.subscriptions.remove(sub)
        sub.ua.forget_dialog(sub.dialog)

    async def _flow_for(self, sub: Subscription) -> Flow | None:
        ua = sub.ua
        if "notify-plain-transport" in self.defects and sub.contact:
            dest = ua.destination_for(sub.contact)
            if dest[0] != "tls":
                return await ua.resolve(dest, "")
        if ua.transport.is_open(sub.dialog.flow):
            return sub.dialog.flow
        return None  # never dial the Contact: it may name a plain transport

    async def _notify(self, sub: Subscription, info: ConferenceInfo | None, state: str) -> None:
        body = b""
        if info is not None:
            sub.version += 1
            info = ConferenceInfo(
                info.entity,
                sub.version,
                info.state,
                info.display_text,
                info.subject,
                info.user_count,
                info.active,
                info.users,
            )
            body = info.to_bytes()
            if "key-in-notify" in self.defects:  # a monitoring extension: each member's key
                body = leaky.with_member_keys(self, sub.conference_id, body)
        try:
            flow = await self._flow_for(sub)
            if flow is None:
                log.info("subscription of %s ended: its TLS connection is gone", sub.user)
                self._drop(sub)
                return
            dialog = sub.dialog
            request = dialog.build_request(
                "NOTIFY",
                flow,
                cseq=dialog.next_seq(),
                body=body,
                headers=[("Event", "conference"), ("Subscription-State", state)],
                content_type=CONTENT_TYPE if body else None,
            )
            handle = sub.ua.transactions.start_client(request, flow)
            response = await handle.wait(NOTIFY_TIMEOUT)
        except (ConfsecError, OSError) as exc:
            log.info("NOTIFY to %s failed: %s", sub.user, exc)
            self._drop(sub)
            return
        # A 481 may only mean the NOTIFY overtook the subscriber's 200 (RFC 6665 4.1.2.4
        # allows that order); timeouts and transport failures end the subscription above.
        log.debug("NOTIFY to %s answered %s", sub.user, response.status)

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _user(member: Member, state: str) -> User:
    endpoints = () if state == "deleted" else (Endpoint(member.endpoint, "full", "connected"),)
    return User(member.entity, state, member.display, (), endpoints)


def _expires(value: str | None) -> int:
    try:
        return max(0, min(int(value), 3600)) if value is not None else DEFAULT_EXPIRES
    except ValueError:
        return DEFAULT_EXPIRES
