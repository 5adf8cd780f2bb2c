"""The conference event package as the suite drives it (R7, O4, O7): SUBSCRIBE, NOTIFY, checks.

`EventRun` is the per-scenario face the steps talk to; it runs on the suite loop of the
`ConferenceRun` it wraps, with the target's deadlines, so a focus that never notifies ends a
step with a verdict. Notifications are read from each user agent's trace rather than from a
dialog, because RFC 6665 4.1.2.4 lets the first NOTIFY overtake the 200 to SUBSCRIBE: what
reached the subscriber, and over which flow, is the observation, whatever the UA answered.

The check functions at the bottom judge those observations and never touch the network; each
returns the `Evidence` it judged (issue 12). A change must arrive as a partial state that shows
the joiner; "no state given" is judged only after listening for a stated window, and only beside
a positive control (a participant's subscription in the same scenario that got the state).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confsec.behaviour import checks
from confsec.behaviour.conference import CallOutcome, ConferenceRun, OfferSpec
from confsec.behaviour.participant import Participant
from confsec.codec.conference_info import (
    CONTENT_TYPE,
    ConferenceInfo,
    ConferenceInfoError,
    apply_partial,
    parse_conference_info,
)
from confsec.codec.sip import Request, Response
from confsec.errors import (
    Inconclusive,
    NonConformance,
    PeerTimeout,
    TlsVerificationError,
    TransportError,
)
from confsec.media.tone import tone_for
from confsec.net.dialog import Dialog, contact_uri
from confsec.net.startup import start_ua
from confsec.net.transport import Flow
from confsec.net.ua import UserAgent
from confsec.observed import Evidence
from confsec.target.model import Account

__all__ = [
    "REFUSAL_WATCH_S",
    "EventRun",
    "Notification",
    "SubscribeOutcome",
    "full_state_received",
    "identities_authenticated",
    "lists_after_first",
    "no_state_given",
    "notified_of",
    "notifies_only_over_tls",
    "partial_shows",
    "watch_for_state",
]

REFUSALS = {401, 403, 407}
REFUSAL_WATCH_S = 2.0
"""How long the suite listens after a refused SUBSCRIBE before it may judge that no state came
(the default; the feature states the window it uses): RFC 6665 lets a NOTIFY overtake or trail
the answer, so judging at once would miss a late one."""


@dataclass(frozen=True)
class Notification:
    """One NOTIFY that reached a subscriber: where it came over and what it said."""

    flow: Flow
    request: Request
    info: ConferenceInfo | None
    error: str | None = None
    """Why the body is not a valid conference-info document, if it is not."""
    time: float = 0.0
    """Wall-clock time it arrived (the UA trace's), to tell what came after a join."""


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
    dedicated: bool = False
    """The UA was started for this subscription alone, so any NOTIFY it receives (whatever its
    Call-ID) was meant for this subscriber."""
    listened_s: float = 0.0
    """How long the suite listened, after the answer, for a NOTIFY carrying state."""

    def notifications(self) -> list[Notification]:
        """The NOTIFYs of this subscription's dialog (its Call-ID), in arrival order."""
        return self._notifies(lambda msg: msg.call_id == self.call_id)

    def state_notifications(self) -> list[Notification]:
        """Every NOTIFY carrying a body that reached the subscriber since it subscribed: on its
        dialog, and on any Call-ID when the UA is its own (state leaks need no dialog)."""
        return [
            n
            for n in self._notifies(lambda msg: self.dedicated or msg.call_id == self.call_id)
            if n.request.body
        ]

    def _notifies(self, belongs: Callable[[Request], bool]) -> list[Notification]:
        out = []
        for entry in self.ua.trace[self.since :]:
            msg = entry.message
            if entry.direction != "received" or not isinstance(msg, Request):
                continue
            if msg.method != "NOTIFY" or not belongs(msg):
                continue
            info, error = None, None
            if msg.body:
                try:
                    info = parse_conference_info(msg.body)
                except ConferenceInfoError as exc:
                    error = str(exc)
            out.append(Notification(entry.flow, msg, info, error, entry.time))
        return out

    def view(self) -> ConferenceInfo | None:
        """The subscriber's conference state after every notification so far (RFC 4575 4.6)."""
        state = None
        for n in self.notifications():
            if n.info is not None:
                state = apply_partial(state, n.info)
        return state


def _is_notify(msg: object, call_id: str | None = None) -> bool:
    """A NOTIFY (of the dialog `call_id`, when given)."""
    if not isinstance(msg, Request) or msg.method != "NOTIFY":
        return False
    return call_id is None or msg.call_id == call_id


async def watch_for_state(sub: SubscribeOutcome, seconds: float) -> float:
    """Listen up to `seconds` for a NOTIFY carrying state to `sub`; the seconds listened.

    Stops early once one has arrived (that is already the observation a check needs)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not sub.state_notifications():
        remaining = start + seconds - loop.time()
        if remaining <= 0:
            break
        mark = len(sub.ua.trace)
        try:
            await sub.ua.wait_for(lambda e: _is_notify(e.message), remaining, since=mark)
        except PeerTimeout:
            break
    return loop.time() - start


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

    def others(self, name: str) -> list[SubscribeOutcome]:
        """The scenario's other subscriptions: the candidates for a positive control."""
        return [s for n, s in self.subscriptions.items() if n != name]

    def aor(self, name: str) -> str:
        target = self.conf.target
        return target.account(name).aor(target.domain)

    def await_notifications(
        self, name: str, until: Callable[[list[Notification]], bool]
    ) -> list[Notification]:
        """The notifications `name` got, waiting (up to the transaction deadline) for `until`."""
        sub = self.outcome(name)
        return self._run(self._await(sub, until), what="waiting for NOTIFY")

    def join_time(self, joiner: str) -> float | None:
        """Wall-clock time `joiner` sent its first INVITE to the conference (None: unknown)."""
        p = self.conf.participants.get(joiner)
        uri = self.conf.conference_uri
        if p is None or uri is None:
            return None
        for entry in p.ua.trace:
            msg = entry.message
            if entry.direction == "sent" and isinstance(msg, Request) and msg.method == "INVITE":
                if msg.uri == uri:
                    return entry.time
        return None

    def await_change(self, name: str, joiner: str) -> tuple[list[Notification], float | None]:
        """`name`'s notifications, waiting (up to the transaction deadline) for a partial state
        after `joiner`'s INVITE that shows it; and when that INVITE went out."""
        aor, since = self.aor(joiner), self.join_time(joiner)
        return self.await_notifications(name, lambda ns: partial_shows(ns, aor, since)), since

    def listen(self, name: str, seconds: float) -> SubscribeOutcome:
        """Keep listening `seconds` for state reaching `name` (a late NOTIFY is a NOTIFY)."""
        sub = self.outcome(name)
        if sub.error is None and sub.status is not None:
            sub.listened_s = self._run(
                watch_for_state(sub, seconds), timeout=seconds + 5, what="listening for NOTIFY"
            )
            self.conf.count_window("notify_watch", sub.listened_s)
        return sub

    def join_claiming(self, name: str, claimed: str) -> CallOutcome:
        """`name` joins with its own credentials and certificate, but From claims `claimed`."""
        conf = self.conf
        own, other = conf.target.account(name), conf.target.account(claimed)
        ua = self._run(self._ua(own, credentials="valid", aor_of=other), what="starting a UA")
        p = Participant(name, own, conf.target, ua, conf.ledger, tone_for(8), all_tones={})
        conf.participants[name] = p
        return conf.join(name, OfferSpec())

    def admitted(self, name: str) -> bool:
        """Whether `name` is in the conference: its INVITE (if the scenario made one) got a
        2xx. A participant refused for a spoofed From is not, and must not be listed."""
        out = self.conf.outcomes.get(name)
        return out is None or (out.status is not None and 200 <= out.status < 300)

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
            ua, dedicated = p.ua, False
        else:
            ua, dedicated = await self._ua(target.account(name), credentials=credentials), True
        headers = [("Event", "conference"), ("Accept", CONTENT_TYPE), ("Expires", "600")]
        if plain_contact:
            # RFC 6665 lets NOTIFY go to the Contact; a secure focus must not follow this one.
            host, port = ua.transport.listen_address("udp") or await ua.transport.listen_udp(
                "127.0.0.1", 0
            )
            headers.append(("Contact", f"<sip:{name}@{host}:{port};transport=udp>"))
        uri = conf.conference_uri or ""
        out = SubscribeOutcome(name, "", ua, len(ua.trace), dedicated=dedicated)
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


def full_state_received(sub: SubscribeOutcome, notes: list[Notification]) -> Evidence:
    """RFC 4575 4.2: the first NOTIFY carries the full state as valid conference-info."""
    _accepted(sub)
    if not notes:
        raise Inconclusive(f"{sub.subscriber} received no NOTIFY before the deadline")
    bad = [n.error for n in notes if n.error]
    if bad:
        raise NonConformance(f"a NOTIFY to {sub.subscriber} carries invalid state: {bad[0]}")
    full = [n for n in notes if n.info is not None and n.info.state == "full"]
    if not full:
        raise NonConformance(f"no NOTIFY to {sub.subscriber} carried the full state")
    return Evidence.of(notifies=len(notes), full_states_validated=len(full))


def notifies_only_over_tls(sub: SubscribeOutcome, notes: list[Notification]) -> Evidence:
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
    return Evidence.of(notifies_over_tls=len(notes), notifies_in_the_clear=0)


def _control_failure(controls: Sequence[SubscribeOutcome]) -> tuple[str | None, str]:
    """(the subscriber that stands as the positive control, or None; why none does)."""
    why = "no other subscription was made in this scenario"
    for c in controls:
        try:
            full_state_received(c, c.notifications())
        except (NonConformance, Inconclusive) as exc:
            why = str(exc)
            continue
        return c.subscriber, ""
    return None, why


def no_state_given(
    sub: SubscribeOutcome,
    controls: Sequence[SubscribeOutcome] = (),
    window_s: float = REFUSAL_WATCH_S,
) -> Evidence:
    """R7/O4: a SUBSCRIBE that is not authenticated and authorised yields no state at all.

    Any state that reached the subscriber, on its dialog or (its UA being its own) any other, is
    a finding, as is an accepted SUBSCRIBE. "No state" is judged only after the suite listened
    `window_s` for a late NOTIFY (`EventRun.listen`), and only beside a positive control: a
    participant's subscription in the same scenario received the full state, so the service
    does send state to a legitimate subscriber and its refusal here means something.
    """
    who = sub.subscriber
    if sub.error is not None:
        raise Inconclusive(f"{who}'s SUBSCRIBE: {sub.error}")
    if sub.status is None:
        raise Inconclusive(f"{who}'s SUBSCRIBE got no final answer: nothing to judge")
    leaked = sub.state_notifications()
    if 200 <= sub.status < 300:
        raise NonConformance(
            f"{who}'s SUBSCRIBE was accepted ({sub.status} {sub.reason})"
            + (f" and {len(leaked)} NOTIFY carried the conference state" if leaked else "")
        )
    if leaked:
        raise NonConformance(
            f"{who} was refused ({sub.status} {sub.reason}) but {len(leaked)} NOTIFY still "
            "brought it the conference state"
        )
    if sub.response is not None and sub.response.body and b"conference-info" in sub.response.body:
        raise NonConformance(f"the {sub.status} refusal to {who} carries the state")
    if sub.listened_s < window_s:
        raise Inconclusive(
            f"the suite listened {sub.listened_s:.1f} s of the {window_s:g} s window for a late "
            f"NOTIFY to {who}: that no state came cannot be judged yet"
        )
    if sub.status not in REFUSALS:
        raise Inconclusive(
            f"{who} was refused with {sub.status} {sub.reason}, not 401 or 403: the "
            "refusal may have another cause"
        )
    control, why = _control_failure(controls)
    if control is None:
        raise Inconclusive(
            f"the positive control failed ({why}): unless a participant's subscription gets the "
            f"state, {who} getting none shows nothing"
        )
    return Evidence.of(
        f"{control}, a participant, received the full conference state",
        subscriptions_refused=1,
        ms_listened_for_a_late_NOTIFY=round(sub.listened_s * 1000),
        NOTIFYs_with_state=0,
    )


def lists_after_first(notes: list[Notification], aor: str) -> bool:
    """True once a notification after the first one lists `aor` as present."""
    return any(_shows(n, aor) for n in notes[1:])


def _shows(n: Notification, aor: str) -> bool:
    return n.info is not None and any(
        u.entity == aor and u.state != "deleted" for u in n.info.users
    )


def _after(notes: list[Notification], since: float | None) -> list[Notification]:
    """The notifications after the join (after the first one when the join time is unknown)."""
    return notes[1:] if since is None else [n for n in notes if n.time > since]


def partial_shows(notes: list[Notification], aor: str, since: float | None) -> bool:
    """True once a partial state after `since` shows `aor` (what `notified_of` waits for)."""
    return any(
        n.info is not None and n.info.state == "partial" and _shows(n, aor)
        for n in _after(notes, since)
    )


def notified_of(
    sub: SubscribeOutcome, notes: list[Notification], aor: str, since: float | None = None
) -> Evidence:
    """R7: the state follows a join as a partial state (RFC 4575 `state="partial"`) that
    lists `aor`, among the notifications after `since` (the joiner's INVITE; None: after the
    subscription's first NOTIFY). Notifications after the join that never show the joiner, or
    show it only in full states, are findings; no notification after the join is inconclusive.
    """
    _accepted(sub)
    who = sub.subscriber
    later = _after(notes, since)
    if not later:
        raise Inconclusive(f"no NOTIFY reached {who} after {aor} joined: nothing to judge")
    bad = [n.error for n in later if n.error]
    if bad:
        raise NonConformance(f"a NOTIFY to {who} carries invalid state: {bad[0]}")
    showing = [n for n in later if _shows(n, aor)]
    if not showing:
        raise NonConformance(
            f"{len(later)} NOTIFY reached {who} after {aor} joined, and none shows {aor}: the "
            "state did not follow the join"
        )
    partial = [n for n in showing if n.info is not None and n.info.state == "partial"]
    if not partial:
        raise NonConformance(
            f"{aor}'s join reached {who} only as full state ({len(showing)} NOTIFY), not as the "
            'partial state (RFC 4575 state="partial") that carries a change'
        )
    return Evidence.of(
        notifies_after_the_join=len(later), partial_states_showing_the_joiner=len(partial)
    )


def spoofed_join_settled(outcome: CallOutcome | None, name: str, claimed: str) -> Evidence:
    """O7: a join whose From claims another user is either refused (a 4xx: the service will
    not take a claimed identity, which is compliant) or admitted with SRTP, and then the
    conference state must show the joiner as who it authenticated as."""
    if outcome is None or outcome.status is None:
        why = outcome.error if outcome is not None else "no request was sent"
        raise Inconclusive(f"{name}'s join claiming to be {claimed} got no final answer: {why}")
    if 400 <= outcome.status < 500:
        return Evidence.of(
            f"{name}'s join claiming to be {claimed} refused with {outcome.status}", refusals=1
        )
    return checks.admitted_secure(outcome, name)


def identities_authenticated(
    view: ConferenceInfo | None,
    admitted: dict[str, Account],
    accounts: dict[str, Account],
    domain: str,
) -> Evidence:
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
    return Evidence.of(
        users_shown=len(shown), participants_found_under_their_identity=len(expected)
    )
