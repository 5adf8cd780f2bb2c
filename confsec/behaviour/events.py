"""The conference event package as the suite drives it (R7, O4, O7): SUBSCRIBE, NOTIFY, checks.

`EventRun` is the per-scenario face the steps talk to; it runs on the suite loop of the
`ConferenceRun` it wraps, with the target's deadlines, so a focus that never notifies ends a
step with a verdict. Notifications are read from each user agent's trace rather than from a
dialog, because RFC 6665 4.1.2.4 lets the first NOTIFY overtake the 200 to SUBSCRIBE: what
reached the subscriber, and over which flow, is the observation, whatever the UA answered.

The check functions at the bottom judge those observations and never touch the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from confsec.behaviour.conference import CallOutcome, ConferenceRun, OfferSpec
from confsec.behaviour.participant import Participant, start_ua
from confsec.codec.conference_info import (
    CONTENT_TYPE,
    ConferenceInfo,
    ConferenceInfoError,
    apply_partial,
    parse_conference_info,
)
from confsec.codec.sip import Request, Response
from confsec.errors import PeerTimeout, TlsVerificationError, TransportError
from confsec.media.tone import tone_for
from confsec.net.dialog import Dialog, contact_uri
from confsec.net.transport import Flow
from confsec.net.ua import UserAgent
from confsec.report.verdicts import Inconclusive, NonConformance
from confsec.target.model import Account

__all__ = [
    "EventRun",
    "Notification",
    "SubscribeOutcome",
    "full_state_received",
    "identities_authenticated",
    "lists_after_first",
    "no_state_given",
    "notified_of",
    "notifies_only_over_tls",
]

REFUSALS = {401, 403, 407}


@dataclass(frozen=True)
class Notification:
    """One NOTIFY that reached a subscriber: where it came over and what it said."""

    flow: Flow
    request: Request
    info: ConferenceInfo | None
    error: str | None = None
    """Why the body is not a valid conference-info document, if it is not."""


@dataclass
class SubscribeOutcome:
    """One SUBSCRIBE to the conference URI and everything that came of it."""

    subscriber: str
    call_id: str
    ua: UserAgent = field(repr=False)
    since: int
    """Index into `ua.trace` where this subscription started."""
    status: int | None = None
    reason: str = ""
    response: Response | None = None
    error: str | None = None

    def notifications(self) -> list[Notification]:
        out = []
        for entry in self.ua.trace[self.since :]:
            msg = entry.message
            if entry.direction != "received" or not _is_notify(msg, self.call_id):
                continue
            assert isinstance(msg, Request)
            info, error = None, None
            if msg.body:
                try:
                    info = parse_conference_info(msg.body)
                except ConferenceInfoError as exc:
                    error = str(exc)
            out.append(Notification(entry.flow, msg, info, error))
        return out

    def view(self) -> ConferenceInfo | None:
        """The subscriber's conference state after every notification so far (RFC 4575 4.6)."""
        state = None
        for n in self.notifications():
            if n.info is not None:
                state = apply_partial(state, n.info)
        return state


def _is_notify(msg: object, call_id: str) -> bool:
    return isinstance(msg, Request) and msg.method == "NOTIFY" and msg.call_id == call_id


class EventRun:
    """Subscriptions of one scenario, over the participants of its `ConferenceRun`."""

    def __init__(self, conf: ConferenceRun) -> None:
        self.conf = conf
        self.subscriptions: dict[str, SubscribeOutcome] = {}
        self._uas: list[UserAgent] = []

    def _run(self, coro, timeout: float | None = None, what: str = ""):  # type: ignore[no-untyped-def]
        t = self.conf.target.timeouts.transaction
        return self.conf.runtime.run(coro, timeout or t * 2 + 2, what)

    # -- sync face for the steps ---------------------------------------------------------------

    def subscribe(
        self, name: str, *, credentials: str = "valid", plain_contact: bool = False
    ) -> SubscribeOutcome:
        """SUBSCRIBE `name` to the conference URI; waits for the answer and the first NOTIFY."""
        if self.conf.conference_uri is None:
            raise Inconclusive(f"{name} cannot subscribe: no conference was created")
        out = self._run(self._subscribe(name, credentials, plain_contact), what="SUBSCRIBE")
        self.subscriptions[name] = out
        return out

    def outcome(self, name: str) -> SubscribeOutcome:
        try:
            return self.subscriptions[name]
        except KeyError:
            raise Inconclusive(f"{name} never subscribed (an earlier step failed)") from None

    def await_notifications(
        self, name: str, until: Callable[[list[Notification]], bool]
    ) -> list[Notification]:
        """The notifications `name` got, waiting (up to the transaction deadline) for `until`."""
        sub = self.outcome(name)
        return self._run(self._await(sub, until), what="waiting for NOTIFY")

    def join_claiming(self, name: str, claimed: str) -> CallOutcome:
        """`name` joins with its own credentials and certificate, but From claims `claimed`."""
        conf = self.conf
        own, other = conf.target.account(name), conf.target.account(claimed)
        ua = self._run(self._ua(own, credentials="valid", aor_of=other), what="starting a UA")
        p = Participant(name, own, conf.target, ua, conf.ledger, tone_for(8), all_tones={})
        conf.participants[name] = p
        return conf.join(name, OfferSpec())

    def close(self) -> None:
        async def _close() -> None:
            for ua in self._uas:
                await ua.close()

        try:
            self._run(_close(), timeout=10, what="closing subscribers")
        except Exception:
            pass

    # -- async work ----------------------------------------------------------------------------

    async def _ua(self, account: Account, *, credentials: str, aor_of: Account | None = None):  # type: ignore[no-untyped-def]
        target = self.conf.target
        ua = await start_ua(
            target,
            self.conf.keylog,
            shown=aor_of or account,
            cert=account,
            credentials=None if credentials == "none" else (account.username, account.password),
        )
        self._uas.append(ua)
        return ua

    async def _subscribe(
        self, name: str, credentials: str, plain_contact: bool
    ) -> SubscribeOutcome:
        conf = self.conf
        target = conf.target
        p = conf.participants.get(name)
        if p is not None and credentials == "valid":
            ua = p.ua
        else:
            ua = await self._ua(target.account(name), credentials=credentials)
        headers = [("Event", "conference"), ("Accept", CONTENT_TYPE), ("Expires", "600")]
        if plain_contact:
            # RFC 6665 lets NOTIFY go to the Contact; a secure focus must not follow this one.
            host, port = ua.transport.listen_address("udp") or await ua.transport.listen_udp(
                "127.0.0.1", 0
            )
            headers.append(("Contact", f"<sip:{name}@{host}:{port};transport=udp>"))
        uri = conf.conference_uri or ""
        out = SubscribeOutcome(name, "", ua, len(ua.trace))
        try:
            ex = await ua.request_exchange(
                "SUBSCRIBE",
                uri,
                dest=target.dest,
                headers=headers,
                authenticate=credentials != "none",
                timeout=target.timeouts.transaction,
            )
        except TlsVerificationError as exc:
            out.error = f"TLS verification failed: {exc}"
            return out
        except (PeerTimeout, TransportError) as exc:
            out.error = f"no answer to SUBSCRIBE: {exc}"
            return out
        out.call_id = ex.request.call_id
        out.status, out.reason, out.response = ex.response.status, ex.response.reason, ex.response
        if 200 <= ex.response.status < 300 and ex.flow is not None:
            _subscriber_dialog(ua, ex.request, ex.response, ex.flow)
            await self._await(out, lambda notes: bool(notes))
        return out

    async def _await(
        self, sub: SubscribeOutcome, until: Callable[[list[Notification]], bool]
    ) -> list[Notification]:
        deadline = asyncio.get_running_loop().time() + self.conf.target.timeouts.transaction
        while True:
            notes = sub.notifications()
            if until(notes):
                return notes
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return notes
            mark = len(sub.ua.trace)
            try:
                await sub.ua.wait_for(
                    lambda e: _is_notify(e.message, sub.call_id), remaining, since=mark
                )
            except PeerTimeout:
                return sub.notifications()


def _subscriber_dialog(ua: UserAgent, request: Request, response: Response, flow: Flow) -> None:
    """Register the subscription's dialog so later NOTIFYs are answered 200, not 481."""
    contact = response.headers.get("Contact")
    dialog = Dialog(
        ua,
        role="uac",
        call_id=request.call_id,
        local_tag=request.from_.tag or "",
        remote_tag=response.to.tag or "",
        local_uri=request.from_.uri,
        remote_uri=response.to.uri,
        local_seq=request.cseq[0],
        remote_seq=None,
        remote_target=contact_uri(contact) if contact else request.uri,
        route_set=list(reversed(response.headers.get_all("Record-Route"))),
        flow=flow,
        secure=flow.secure,
    )
    ua.dialogs[dialog.id] = dialog


# -- checks ------------------------------------------------------------------------------------


def _accepted(sub: SubscribeOutcome) -> None:
    if sub.error is not None:
        raise Inconclusive(f"{sub.subscriber}'s SUBSCRIBE: {sub.error}")
    if sub.status is None or not 200 <= sub.status < 300:
        raise Inconclusive(
            f"{sub.subscriber}, a participant, could not subscribe ({sub.status} {sub.reason}): "
            "the event package cannot be judged"
        )


def full_state_received(sub: SubscribeOutcome, notes: list[Notification]) -> None:
    """RFC 4575 4.2: the first NOTIFY carries the full state as valid conference-info."""
    _accepted(sub)
    if not notes:
        raise Inconclusive(f"{sub.subscriber} received no NOTIFY before the deadline")
    bad = [n.error for n in notes if n.error]
    if bad:
        raise NonConformance(f"a NOTIFY to {sub.subscriber} carries invalid state: {bad[0]}")
    if not any(n.info is not None and n.info.state == "full" for n in notes):
        raise NonConformance(f"no NOTIFY to {sub.subscriber} carried the full state")


def notifies_only_over_tls(sub: SubscribeOutcome, notes: list[Notification]) -> None:
    """R7: every NOTIFY travelled inside TLS, whatever the subscriber's Contact said."""
    _accepted(sub)
    if not notes:
        raise Inconclusive(f"{sub.subscriber} received no NOTIFY: nothing to judge")
    plain = [n for n in notes if not n.flow.secure]
    if plain:
        n = plain[0]
        what = "with conference state" if n.info is not None else "(no body)"
        raise NonConformance(
            f"{len(plain)} of {len(notes)} NOTIFYs to {sub.subscriber} travelled over "
            f"{n.flow.transport.upper()} in the clear {what}, from {n.flow.remote[0]}:"
            f"{n.flow.remote[1]}"
        )


def no_state_given(sub: SubscribeOutcome) -> None:
    """R7/O4: a SUBSCRIBE that is not authenticated and authorised yields no state at all."""
    if sub.error is not None:
        raise Inconclusive(f"{sub.subscriber}'s SUBSCRIBE: {sub.error}")
    assert sub.status is not None
    with_state = [n for n in sub.notifications() if n.request.body]
    if 200 <= sub.status < 300:
        raise NonConformance(
            f"{sub.subscriber}'s SUBSCRIBE was accepted ({sub.status} {sub.reason})"
            + (f" and {len(with_state)} NOTIFY carried the conference state" if with_state else "")
        )
    if with_state:
        raise NonConformance(f"{sub.subscriber} was refused but still sent the conference state")
    if sub.response is not None and sub.response.body and b"conference-info" in sub.response.body:
        raise NonConformance(f"the {sub.status} refusal to {sub.subscriber} carries the state")
    if sub.status not in REFUSALS:
        raise Inconclusive(
            f"{sub.subscriber} was refused with {sub.status} {sub.reason}, not 401 or 403: the "
            "refusal may have another cause"
        )


def lists_after_first(notes: list[Notification], aor: str) -> bool:
    """True once a notification after the first one lists `aor` as present."""
    return any(
        u.entity == aor and u.state != "deleted"
        for n in notes[1:]
        if n.info is not None
        for u in n.info.users
    )


def notified_of(sub: SubscribeOutcome, notes: list[Notification], aor: str) -> None:
    """A later notification (partial, or full) lists `aor`: the state follows joins."""
    _accepted(sub)
    if not lists_after_first(notes, aor):
        raise Inconclusive(f"{sub.subscriber} was not notified of {aor} before the deadline")


def identities_authenticated(
    view: ConferenceInfo | None,
    admitted: dict[str, Account],
    accounts: dict[str, Account],
    domain: str,
) -> None:
    """R2/O7: each user appears under the identity it authenticated as, and no one else's.

    `admitted` are the participants the suite put in the conference (name -> account it logged
    in with). A user entity no one authenticated as, a participant missing under its own
    identity, two users under one entity, or a display name of another account, are findings.
    """
    if view is None:
        raise Inconclusive("no conference state was received")
    expected = {a.aor(domain).lower(): n for n, a in admitted.items()}
    shown = [u for u in view.users if u.state != "deleted"]
    entities = [u.entity.lower() for u in shown]
    problems = []
    for aor, name in expected.items():
        if aor not in entities:
            problems.append(f"{name} is not listed under its authenticated identity {aor}")
    for entity in sorted(set(entities)):
        if entity not in expected:
            problems.append(f"the state lists {entity}, which no admitted participant is")
        elif entities.count(entity) > 1:
            problems.append(f"{entities.count(entity)} users are shown as {entity}")
    for u in shown:
        owner = expected.get(u.entity.lower())
        if not u.display_text or owner is None:
            continue
        others = {(a.display_name or n).lower(): n for n, a in accounts.items() if n != owner} | {
            n.lower(): n for n in accounts if n != owner
        }
        claimed = others.get(u.display_text.strip().lower())
        if claimed is not None:
            problems.append(f"{owner} is shown with {claimed}'s name {u.display_text!r}")
    if problems:
        raise NonConformance("; ".join(problems))
