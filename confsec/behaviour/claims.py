"""Authenticated users who claim someone else's identity (R2, R7, R8): the driving side.

A service must authorise a request as the user it authenticated (digest over TLS, the client
certificate), never as the user the request names. Each probe here is an impostor that logs in
with its own valid credentials and certificate and claims a member's identity in one place:

- `From`: its From URI and display name are the member's (RFC 3261 8.1.1.3: a UA writes any
  From it likes, which is why From is never an identity);
- `P-Asserted-Identity`: its From is its own, but it asserts the member's identity the way a
  proxy of a trust domain would (RFC 3325 9.1: an identity asserted by a user agent, outside any
  trust domain, must not be believed);
- `the From display name`: its From URI is its own, the display name is the member's.

It then subscribes to the conference state (R7), joins a members-only conference (R2, created
with an RFC 5366 recipient list), or, holding no floor session at all, opens a floor control
connection with its own certificate and sends a first message under the member's BFCP user id
(R8). The checks (`confsec.behaviour.claim_checks`) judge each beside its control: the member
claimed is itself served in the same scenario.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.events import EventRun, SubscribeOutcome
from confsec.behaviour.floor import SECURE, FloorRun, FloorSession, unreachable
from confsec.behaviour.floor_binding import (
    PRIMITIVES,
    FirstMessage,
    FirstMessages,
    grants_received,
)
from confsec.behaviour.outcomes import CallOutcome
from confsec.behaviour.participant import OfferSpec, Participant
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp
from confsec.codec.recipient_list import OPTION_TAG, recipient_list_body
from confsec.errors import Inconclusive, PeerTimeout, TransportError
from confsec.media.tone import tone_for
from confsec.net.bfcp import BfcpClient
from confsec.net.startup import client_ssl_context, start_ua
from confsec.pki import fingerprint_sha256
from confsec.target.model import Account, Target

__all__ = [
    "CLAIMS",
    "Claim",
    "claim",
    "create_members_only",
    "join_claiming",
    "outsider_first",
    "subscribe_claiming",
]

CLAIMS = ("From", "P-Asserted-Identity", "the From display name")
"""Where an impostor shows the identity it claims, by the name the Gherkin uses."""


@dataclass(frozen=True)
class Claim:
    """How a request shows `claimed`'s identity while it authenticates as `name`."""

    name: str
    claimed: str
    where: str
    shown: Account | None
    """Whose AOR and display name the UA writes in From (None: its own)."""
    headers: tuple[tuple[str, str], ...] = ()


def claim(target: Target, name: str, claimed: str, where: str) -> Claim:
    """The claim of `claimed`'s identity in `where` (one of `CLAIMS`) by `name`."""
    own, other = target.account(name), target.account(claimed)
    display = other.display_name or other.name.capitalize()
    if where == "From":
        return Claim(name, claimed, where, other)
    if where == "P-Asserted-Identity":
        pai = f'"{display}" <{other.aor(target.domain)}>'
        return Claim(name, claimed, where, None, (("P-Asserted-Identity", pai),))
    if where == "the From display name":
        return Claim(name, claimed, where, dataclasses.replace(own, display_name=display))
    raise ValueError(f"an identity is claimed in one of {', '.join(CLAIMS)}, not {where!r}")


def _outsider(conf: ConferenceRun, name: str) -> None:
    """A probe's sender must not be in the conference: the point is that it is no member."""
    if name in conf.participants:
        raise ValueError(f"{name} is in the conference: it cannot probe as a non-member")


def subscribe_claiming(events: EventRun, name: str, claimed: str, where: str) -> SubscribeOutcome:
    """`name` (authenticated, no participant) SUBSCRIBEs claiming to be `claimed` in `where`."""
    _outsider(events.conf, name)
    c = claim(events.conf.target, name, claimed, where)
    return events.subscribe(name, shown=c.shown, headers=c.headers)


def join_claiming(conf: ConferenceRun, name: str, claimed: str, where: str) -> CallOutcome:
    """`name` joins with its own credentials and certificate, claiming `claimed` in `where`."""
    _outsider(conf, name)
    target = conf.target
    c = claim(target, name, claimed, where)
    if c.shown is not None:  # a participant whose UA shows the claim in every From
        own = target.account(name)
        ua = conf.runtime.run(
            start_ua(
                target,
                conf.keylog,
                shown=c.shown,
                cert=own,
                credentials=(own.username, own.password),
            ),
            target.timeouts.connect + target.timeouts.transaction,
            "starting a UA",
        )
        conf.participants[name] = Participant(
            name, own, target, ua, conf.ledger, tone_for(8), all_tones={}
        )
    return conf.join(name, OfferSpec(), headers=c.headers)


def create_members_only(conf: ConferenceRun, creator: str, members: Sequence[str]) -> CallOutcome:
    """`creator` creates a secure conference for `members` alone: its INVITE to the factory
    carries them as an RFC 5366 recipient list (the creator is a member by creating it)."""
    target = conf.target
    uris = [target.account(m).aor(target.domain) for m in members if m != creator]
    return conf.create(
        creator,
        OfferSpec(),
        headers=[("Require", OPTION_TAG)],
        wrap=lambda sdp: recipient_list_body(sdp, uris),
    )


def outsider_first(firsts: FirstMessages, name: str, primitive: str, as_user: str) -> FirstMessage:
    """`name`, who holds no floor session in the conference, opens a fresh TLS connection to
    the floor control server `as_user`'s answer names, with its own valid certificate, and
    sends `primitive` ('Hello' or 'FloorRequest') first under `as_user`'s conference and user
    id. Recorded with the scenario's other first messages."""
    run = firsts.run
    _outsider(run.conf, name)
    if name in run.sessions:
        raise ValueError(f"{name} has a floor session: it cannot probe as a non-member")
    if primitive not in PRIMITIVES:
        raise ValueError(f"a first message is one of {', '.join(PRIMITIVES)}, not {primitive}")
    member = run.session(as_user)
    a = member.answer
    if a is None or a.port == 0 or a.proto.upper() != SECURE:
        raise Inconclusive(f"{as_user} has no floor control over TLS: the answer declined it")
    t = run.conf.target.timeouts
    first = run.conf.runtime.run(
        _outsider_first(run, name, member, primitive),
        t.connect + t.transaction * 2,
        f"a first BFCP {primitive} from outside the conference",
    )
    firsts.sent.append(first)
    return first


async def _outsider_first(
    run: FloorRun, name: str, member: FloorSession, primitive: str
) -> FirstMessage:
    target = run.conf.target
    account = target.account(name)
    a = member.answer
    assert a is not None  # outsider_first checked it
    first = FirstMessage(
        sender=name,
        primitive=primitive,
        claimed=member.name,
        offered=None,  # it made no offer: it is in no conference
        presented=fingerprint_sha256(account.client_cert).upper() if account.client_cert else None,
        started=asyncio.get_running_loop().time(),
    )
    try:
        client = await BfcpClient.connect(
            a.host,
            a.port,
            ssl_context=client_ssl_context(target, account, run.conf.keylog),
            server_hostname=target.domain,
            timeout=target.timeouts.connect,
        )
    except TransportError as exc:
        first.connect_error, first.unreachable = str(exc), unreachable(exc)
        return first
    first.connected, first.tls = True, client.peer is not None
    attrs = [b.BfcpFloorId(floor_id=a.floor_id)] if primitive == "FloorRequest" else []
    msg = Bfcp(
        primitive=PRIMITIVES[primitive],
        conference_id=a.conference_id,
        transaction_id=1,
        user_id=a.user_id,
        attributes=attrs,
    )
    try:
        try:
            got = await client.transact(msg, target.timeouts.transaction)
        except PeerTimeout:
            first.result = "silent"
        else:
            first.result, first.answer = ("closed" if got is None else "answered"), got
        first.grants = grants_received(client)
    finally:
        await client.close()
    return first
