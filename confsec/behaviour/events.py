"""The conference event package as the suite drives it (R7, O4, O7): SUBSCRIBE, NOTIFY, checks.

`EventRun` is the per-scenario face the steps talk to; it runs on the suite loop of the
`ConferenceRun` it wraps, with the target's deadlines, so a focus that never notifies ends a
step with a verdict. Notifications are read from each user agent's trace rather than from a
dialog, because RFC 6665 4.1.2.4 lets the first NOTIFY overtake the 200 to SUBSCRIBE: what
reached the subscriber, and over which flow, is the observation, whatever the UA answered.

The checks (confsec.behaviour.event_checks) judge those observations and never touch the
network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.outcomes import CallOutcome
from confsec.behaviour.participant import OfferSpec, Participant
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
    PeerTimeout,
    TlsVerificationError,
    TransportError,
)
from confsec.media.tone import tone_for
from confsec.net.dialog import Dialog
from confsec.net.flow import Flow
from confsec.net.startup import start_ua
from confsec.net.ua import UserAgent
from confsec.target.model import Account

__all__ = [
    "REFUSAL_WATCH_S",
    "EventRun",
    "Notification",
    "SubscribeOutcome",
    "lists_after_first",
    "partial_shows",
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
        self,
        name: str,
        *,
        credentials: str = "valid",
        plain_contact: bool = False,
        shown: Account | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> SubscribeOutcome:
        """SUBSCRIBE `name` to the conference URI; waits for the answer and the first NOTIFY.

        With `shown` a UA of its own shows that account's AOR and display name in From while
        it authenticates as `name`; `headers` are added as they are (P-Asserted-Identity)."""
        if self.conf.conference_uri is None:
            raise Inconclusive(f"{name} cannot subscribe: no conference was created")
        out = self._run(
            self._subscribe(name, credentials, plain_contact, shown, headers), what="SUBSCRIBE"
        )
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
        self,
        name: str,
        credentials: str,
        plain_contact: bool,
        shown: Account | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> SubscribeOutcome:
        conf = self.conf
        target = conf.target
        p = conf.participants.get(name)
        if p is not None and credentials == "valid" and shown is None:
            ua, dedicated = p.ua, False
        else:
            account = target.account(name)
            ua = await self._ua(account, credentials=credentials, aor_of=shown)
            dedicated = True
        headers = [("Event", "conference"), ("Accept", CONTENT_TYPE), ("Expires", "600")]
        headers += extra
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
    dialog = Dialog.uac(ua, request, response, flow, secure=flow.secure)
    ua.dialogs[dialog.id] = dialog


# -- what a wait for notifications waits for ------------------------------------------------


def lists_after_first(notes: list[Notification], aor: str) -> bool:
    """True once a notification after the first one lists `aor` as present."""
    return any(shows(n, aor) for n in notes[1:])


def shows(n: Notification, aor: str) -> bool:
    """Whether the state in `n` lists `aor` as present."""
    return n.info is not None and any(
        u.entity == aor and u.state != "deleted" for u in n.info.users
    )


def after_join(notes: list[Notification], since: float | None) -> list[Notification]:
    """The notifications after the join (after the first one when the join time is unknown)."""
    return notes[1:] if since is None else [n for n in notes if n.time > since]


def partial_shows(notes: list[Notification], aor: str, since: float | None) -> bool:
    """True once a partial state after `since` shows `aor` (what `notified_of` waits for)."""
    return any(
        n.info is not None and n.info.state == "partial" and shows(n, aor)
        for n in after_join(notes, since)
    )
