"""R7's judgements on hand-built NOTIFYs (no server): partial states and refusals, earned.

A change must reach the subscriber as a partial state (RFC 4575 4.6) that shows the joiner; a
full state, or notifications that never show the joiner, are findings, and no notification at
all after the join is inconclusive. A refused subscription is judged only after listening for a
stated window (a NOTIFY may come late) and only when another subscriber, a participant, did get
the state (the control: the service does send state to a legitimate subscriber).

`judge` gives the verdict the way the plugin does (`classify`; a pass on no evidence is
inconclusive), so a check that raises the wrong kind of exception fails a test here instead of
being turned into a skip.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from confsec.behaviour import event_checks as ec
from confsec.behaviour import events as ev
from confsec.codec.conference_info import CONTENT_TYPE, ConferenceInfo, Endpoint, User
from confsec.codec.sip import Headers, Request, Response
from confsec.errors import PeerTimeout
from confsec.net.flow import Flow
from confsec.net.trace import TraceEntry
from confsec.report.verdicts import Verdict
from tests.behaviour.judging import judge, passes_on_evidence

PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
DOMAIN = "example.com"
CONF = f"sips:conf-1@{DOMAIN}"
TLS = Flow("tls", ("127.0.0.1", 5061), ("127.0.0.1", 40000))
_seq = itertools.count(1)


def aor(name: str) -> str:
    return f"sips:{name}@{DOMAIN}"


def state(kind: str, *names: str) -> bytes:
    """A conference-info document, `kind` 'full' or 'partial', listing `names`."""
    users = tuple(
        User(aor(n), "full", n, (), (Endpoint(f"sips:{n}-1@{DOMAIN}", "full", "connected"),))
        for n in names
    )
    return ConferenceInfo(CONF, next(_seq), kind, users=users).to_bytes()


def notify(call_id: str, body: bytes = b"") -> Request:
    headers = [
        ("Via", "SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-1"),
        ("From", f"<{CONF}>;tag=f"),
        ("To", f"<{aor('bob')}>;tag=t"),
        ("Call-ID", call_id),
        ("CSeq", f"{next(_seq)} NOTIFY"),
        ("Event", "conference"),
        ("Subscription-State", "active;expires=600"),
    ]
    if body:
        headers.append(("Content-Type", CONTENT_TYPE))
    return Request("NOTIFY", aor("bob"), Headers(headers), body)


@dataclass
class FakeUA:
    """What a `SubscribeOutcome` reads from a user agent: its trace (and `wait_for`)."""

    trace: list[TraceEntry] = field(default_factory=list)

    def receive(self, message: Request, at: float) -> None:
        self.trace.append(TraceEntry("received", TLS, message, at))

    async def wait_for(self, predicate, timeout: float = 5.0, *, since=None):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = since if since is not None else len(self.trace)
        while loop.time() < deadline:
            for entry in self.trace[seen:]:
                if entry.direction == "received" and predicate(entry):
                    return entry
            await asyncio.sleep(0.01)
        raise PeerTimeout(f"no matching message within {timeout} s")


def subscription(name: str, status: int, *bodies: tuple[float, bytes]) -> ev.SubscribeOutcome:
    """`name`'s SUBSCRIBE answered `status`, then NOTIFYs (wall time, body) on its dialog."""
    ua = FakeUA()
    sub = ev.SubscribeOutcome(name, f"call-{name}", ua, 0)  # type: ignore[arg-type]
    sub.status, sub.reason = status, {200: "OK", 403: "Forbidden", 401: "Unauthorized"}[status]
    sub.response = Response(status, sub.reason, Headers([]))
    for at, body in bodies:
        ua.receive(notify(sub.call_id, body), at)
    return sub


def later(sub: ev.SubscribeOutcome, at: float, body: bytes, call_id: str | None = None) -> None:
    sub.ua.receive(notify(call_id or sub.call_id, body), at)  # type: ignore[attr-defined]


# -- changes arrive as partial states that show the joiner --------------------------------------


def test_a_full_state_after_the_join_is_not_a_partial_state() -> None:
    bob = subscription("bob", 200, (1.0, state("full", "alice", "bob")))
    later(bob, 2.0, state("full", "alice", "bob", "carol"))
    verdict, why = judge(ec.notified_of, bob, bob.notifications(), aor("carol"))
    assert verdict == FAIL and "partial" in why


def test_notifications_after_the_join_that_never_show_the_joiner_fail() -> None:
    bob = subscription("bob", 200, (1.0, state("full", "alice", "bob")))
    later(bob, 2.0, state("partial", "dave"))
    verdict, why = judge(ec.notified_of, bob, bob.notifications(), aor("carol"))
    assert verdict == FAIL and "carol" in why


def test_no_notification_after_the_join_is_inconclusive() -> None:
    bob = subscription("bob", 200, (1.0, state("full", "alice", "bob")))
    verdict, why = judge(ec.notified_of, bob, bob.notifications(), aor("carol"))
    assert verdict == INCONCLUSIVE and "no NOTIFY" in why


def test_a_partial_state_showing_the_joiner_passes_on_evidence() -> None:
    bob = subscription("bob", 200, (1.0, state("full", "alice", "bob")))
    later(bob, 2.0, state("partial", "carol"))
    verdict, why = judge(ec.notified_of, bob, bob.notifications(), aor("carol"))
    assert verdict == PASS and "1 partial states showing the joiner" in why


def test_only_notifications_after_the_join_count() -> None:
    """A partial state that arrived before the joiner's INVITE is not the change notification."""
    bob = subscription("bob", 200, (1.0, state("full", "alice", "bob")))
    later(bob, 2.0, state("partial", "carol"))
    verdict, why = judge(ec.notified_of, bob, bob.notifications(), aor("carol"), since=3.0)
    assert verdict == INCONCLUSIVE and "no NOTIFY" in why


# -- no state for a refused subscriber, judged after a window, with a control --------------------


def control() -> ev.SubscribeOutcome:
    return subscription("alice", 200, (1.0, state("full", "alice")))


def listened(sub: ev.SubscribeOutcome) -> ev.SubscribeOutcome:
    """`sub` after the suite listened for the whole stated window (2 s, `REFUSAL_WATCH_S`)."""
    sub.listened_s = 2.0
    return sub


def test_a_refusal_without_a_control_is_inconclusive() -> None:
    verdict, why = judge(ec.no_state_given, listened(subscription("erin", 403)))
    assert verdict == INCONCLUSIVE and "control" in why


def test_a_refusal_whose_control_got_no_state_is_inconclusive() -> None:
    erin = listened(subscription("erin", 403))
    for failed in (subscription("alice", 200), subscription("alice", 403)):
        verdict, why = judge(ec.no_state_given, erin, [failed])
        assert verdict == INCONCLUSIVE and "control" in why


def test_a_refusal_judged_before_listening_is_inconclusive() -> None:
    verdict, why = judge(ec.no_state_given, subscription("erin", 403), [control()])
    assert verdict == INCONCLUSIVE and "listened" in why


def test_a_refusal_after_the_window_with_a_control_passes_on_evidence() -> None:
    verdict, why = judge(ec.no_state_given, listened(subscription("erin", 403)), [control()])
    assert verdict == PASS and "controls" in why


def test_state_on_another_call_id_of_the_refused_subscriber_fails() -> None:
    """erin's UA was started for this SUBSCRIBE: state reaching it on any dialog is a leak."""
    erin = listened(subscription("erin", 403))
    erin.dedicated = True
    later(erin, 2.0, state("full", "alice"), call_id="another-call")
    verdict, why = judge(ec.no_state_given, erin, [control()])
    assert verdict == FAIL and "state" in why


def test_an_accepted_subscription_fails_whatever_the_control() -> None:
    verdict, why = judge(ec.no_state_given, subscription("erin", 200))
    assert verdict == FAIL and "accepted" in why


def test_a_late_notify_is_still_caught() -> None:
    """The watch keeps listening: a NOTIFY 0.3 s after the refusal is an observation."""
    erin = subscription("erin", 403)

    async def watch() -> float:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, later, erin, 9.0, state("full", "alice"))
        return await ev.watch_for_state(erin, 2.0)

    waited = asyncio.run(watch())
    assert 0.25 <= waited < 1.5  # it stopped once the state arrived
    erin.listened_s = waited
    verdict, why = judge(ec.no_state_given, erin, [control()])
    assert verdict == FAIL and "state" in why


def test_the_watch_listens_for_the_whole_window() -> None:
    erin = subscription("erin", 403)
    assert asyncio.run(ev.watch_for_state(erin, 0.3)) >= 0.3


# -- every check returns its evidence -------------------------------------------------------------


def test_full_state_and_tls_checks_pass_on_evidence() -> None:
    bob = subscription("bob", 200, (1.0, state("full", "alice", "bob")))
    assert passes_on_evidence(ec.full_state_received, bob, bob.notifications())
    assert passes_on_evidence(ec.notifies_only_over_tls, bob, bob.notifications())
