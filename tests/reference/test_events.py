"""The reference's conference event package (confsec/reference/events.py) on real sockets.

The R7 scenarios pin the security properties end to end; here the package's own behaviour is
pinned against the embedded reference: partial states on join and leave, no fall-back to the
Contact when the subscriber's TLS connection is gone, and the answers to requests it refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.event_checks import no_state_given, notified_of
from confsec.behaviour.events import EventRun, lists_after_first
from confsec.behaviour.participant import OfferSpec
from confsec.reference.deployment import EmbeddedReference


@pytest.fixture
def events(conf: ConferenceRun) -> Iterator[EventRun]:
    run = EventRun(conf)
    yield run
    run.close()


def _settle(reference: EmbeddedReference) -> None:
    """Wait until every NOTIFY the reference has started is done (no sleeping)."""

    async def drain() -> None:
        tasks = list(reference.deployment.focus.events._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    reference.loop.run(drain(), timeout=20, what="NOTIFY tasks")


def _conference(conf: ConferenceRun) -> None:
    assert conf.create("alice", OfferSpec()).status == 200
    assert conf.join("bob", OfferSpec()).status == 200


def test_join_and_leave_reach_subscribers_as_partial_states(
    conf: ConferenceRun, events: EventRun, reference: EmbeddedReference
) -> None:
    _conference(conf)
    sub = events.subscribe("bob")
    assert sub.status == 200
    first = sub.notifications()[0]
    assert first.info is not None and first.info.state == "full"
    assert first.request.headers.get("Subscription-State", "").startswith("active")
    assert {u.entity.split("@")[0] for u in first.info.users} == {"sips:alice", "sips:bob"}

    assert conf.join("carol", OfferSpec()).status == 200
    carol = conf.target.account("carol").aor(conf.target.domain)
    notes = events.await_notifications("bob", lambda ns: lists_after_first(ns, carol))
    partial = [n.info for n in notes[1:] if n.info is not None]
    assert partial and partial[-1].state == "partial"
    assert [u.entity for u in partial[-1].users] == [carol]
    assert partial[-1].version > first.info.version

    dialog = next(iter(conf.participant("carol").ua.dialogs.values()))
    conf.runtime.run(dialog.bye(timeout=5), timeout=10)
    notes = events.await_notifications(
        "bob",
        lambda ns: any(
            u.entity == carol and u.state == "deleted" for n in ns if n.info for u in n.info.users
        ),
    )
    view = sub.view()
    assert view is not None and carol not in {u.entity for u in view.users}
    assert all(n.flow.secure for n in notes)


def test_notify_never_falls_back_to_a_plain_contact(
    conf: ConferenceRun, events: EventRun, reference: EmbeddedReference
) -> None:
    _conference(conf)
    sub = events.subscribe("bob", plain_contact=True)
    assert sub.status == 200 and sub.notifications()
    ua = sub.ua
    flow = sub.notifications()[0].flow
    conf.runtime.run(_close_flow(ua, flow), timeout=5)
    assert conf.join("carol", OfferSpec()).status == 200
    _settle(reference)
    assert all(n.flow.secure for n in sub.notifications())
    conference_id = (conf.conference_uri or "").split(":")[1].split("@")[0]
    state = reference.deployment.focus.events.states[conference_id]
    assert [s.user for s in state.subscriptions] == [], "the subscription should have ended"


async def _close_flow(ua, flow) -> None:  # type: ignore[no-untyped-def]
    ua.transport.close_flow(flow)
    await asyncio.sleep(0)


def test_requests_the_package_refuses(conf: ConferenceRun, events: EventRun) -> None:
    _conference(conf)
    p = conf.participant("bob")
    target = conf.target

    async def subscribe(uri: str, event: str) -> int:
        response = await p.ua.request(
            "SUBSCRIBE", uri, dest=target.dest, headers=[("Event", event)], timeout=5
        )
        return response.status

    assert conf.runtime.run(subscribe(conf.conference_uri or "", "presence"), 10) == 489
    unknown = f"sips:conf-000000000000@{target.domain}"
    assert conf.runtime.run(subscribe(unknown, "conference"), 10) == 404


def test_identity_comes_from_authentication_not_from(conf: ConferenceRun, events: EventRun) -> None:
    _conference(conf)
    assert events.join_claiming("mallory", "alice").status == 200
    view = events.subscribe("alice").view()
    assert view is not None
    shown = {u.entity: u.display_text for u in view.users}
    assert shown[conf.target.account("mallory").aor(conf.target.domain)] == "mallory"
    assert list(shown).count(conf.target.account("alice").aor(conf.target.domain)) == 1


def test_the_change_notification_is_judged_after_the_joiners_invite(
    conf: ConferenceRun, events: EventRun
) -> None:
    """`await_change` dates the join by the joiner's INVITE and waits for a partial state that
    shows it; the initial full state came before and does not count as the change."""
    _conference(conf)
    first = events.subscribe("bob").notifications()[0]
    assert conf.join("carol", OfferSpec()).status == 200
    notes, since = events.await_change("bob", "carol")
    assert since is not None and first.time < since
    seen = notified_of(events.outcome("bob"), notes, events.aor("carol"), since=since)
    assert seen.counts["partial states showing the joiner"] >= 1


def test_a_refused_subscriber_is_listened_to_for_the_window(
    conf: ConferenceRun, events: EventRun
) -> None:
    """The refusal is judged after the window (accounted as a protocol window) and beside the
    participant's subscription, which got the full state."""
    assert conf.create("alice", OfferSpec()).status == 200
    events.subscribe("alice")
    erin = events.subscribe("erin")
    assert erin.status == 403 and erin.dedicated
    events.listen("erin", 0.5)
    assert erin.listened_s >= 0.5 and conf.protocol_windows["notify_watch"] >= 0.5
    seen = no_state_given(erin, events.others("erin"), window_s=0.5)
    assert seen.controls == ("alice, a participant, received the full conference state",)
