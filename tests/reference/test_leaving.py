"""Leaving and vanishing in the reference (focus.py, events.py, liveness.py), on real sockets.

The R6/R7 leaving scenarios judge the behaviour end to end; here the reference's own rules are
pinned: a leaver's subscription ends with a final NOTIFY and is forgotten, a participant is lost
only when its signalling *and* its media are gone, and a lost one goes as with a BYE (the others
rekeyed, the mixer no longer sending to it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.events import EventRun
from confsec.behaviour.participant import OfferSpec
from confsec.reference.deployment import EmbeddedReference
from confsec.reference.liveness import LOST_PARTICIPANT_TIMEOUT_S, LostParticipants
from confsec.reference.mixer import RTCP_LINGER_S, Mixer
from confsec.reference.mixer_control import LegSetup, StreamSetup
from confsec.reference.model import Leg

REKEY_DEADLINE_S = 2.0


@pytest.fixture
def events(conf: ConferenceRun) -> Iterator[EventRun]:
    run = EventRun(conf)
    yield run
    run.close()


def _conference(conf: ConferenceRun) -> str:
    assert conf.create("alice", OfferSpec()).status == 200
    assert conf.join("bob", OfferSpec()).status == 200
    return (conf.conference_uri or "").split(":")[1].split("@")[0]


def _legs_of(reference: EmbeddedReference, conference_id: str) -> list[str]:
    conference = reference.deployment.focus.conferences.get(conference_id)
    return sorted(leg.user for leg in conference.legs.values()) if conference else []


def _check_with(reference: EmbeddedReference, media_timeout_s: float) -> list[Leg]:
    """One pass of a watch like the deployment's, with another media timeout."""
    dep = reference.deployment
    assert dep.ua is not None
    watch = LostParticipants(
        dep.focus.conferences,
        dep.mixer,
        dep.ua.transport.is_open,
        dep.focus.lost,
        media_timeout_s=media_timeout_s,
    )

    async def check() -> list[Leg]:
        return watch.check()

    return reference.loop.run(check(), timeout=5, what="checking for lost participants")


def test_a_leavers_subscription_ends_and_a_new_one_is_refused(
    conf: ConferenceRun, events: EventRun, reference: EmbeddedReference
) -> None:
    conference_id = _conference(conf)
    sub = events.subscribe("bob")
    assert sub.status == 200 and sub.notifications()
    conf.leave("bob")

    def ended(notes) -> bool:  # type: ignore[no-untyped-def]
        return any(
            (n.request.headers.get("Subscription-State") or "").startswith("terminated")
            for n in notes
        )

    final = events.await_notifications("bob", ended)[-1]
    # RFC 6665 4.1.3: the authorization policy changed; and no state goes with it.
    assert final.request.headers.get("Subscription-State") == "terminated;reason=rejected"
    assert not final.request.body
    state = reference.deployment.focus.events.states[conference_id]
    assert [s.user for s in state.subscriptions] == []
    again = events.subscribe("bob")
    assert again.status == 403 and not again.state_notifications()


def test_a_participant_is_lost_only_when_signalling_and_media_are_both_gone(
    conf: ConferenceRun, reference: EmbeddedReference
) -> None:
    conference_id = _conference(conf)
    # Signalling up, no media at all since the join: kept, however long the silence.
    assert _check_with(reference, media_timeout_s=0.0) == []
    alice, bob = conf.participant("alice"), conf.participant("bob")
    alice.start_media()
    bob.start_media()
    audio = alice.legs["audio"]
    conf.runtime.run(audio.wait_for_packets(audio.received + 25, 5), 10)
    # Signalling gone, media flowing: kept.
    conf.runtime.run(bob.ua.close(), 5)
    conf.runtime.run(audio.wait_for_packets(audio.received + 25, 5), 10)
    assert _check_with(reference, media_timeout_s=1.0) == []
    assert _legs_of(reference, conference_id) == ["alice", "bob"]
    # Then the media stops as well: lost, and alice is rekeyed as after a BYE.
    rekeys = len(alice.rekeys)
    start = conf.runtime.punctuality.now()
    bob.stop_media()

    async def rekeyed() -> float:
        while len(alice.rekeys) == rekeys:
            alice.rekey_arrived.clear()
            await alice.rekey_arrived.wait()
        return asyncio.get_running_loop().time()

    at = conf.runtime.run(rekeyed(), LOST_PARTICIPANT_TIMEOUT_S + REKEY_DEADLINE_S + 5)
    assert at - start < LOST_PARTICIPANT_TIMEOUT_S + REKEY_DEADLINE_S + 2
    assert _legs_of(reference, conference_id) == ["alice"]
    alice.stop_media()


def test_the_mixer_stops_sending_to_a_vanished_participant(
    conf: ConferenceRun, reference: EmbeddedReference
) -> None:
    conference_id = _conference(conf)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    alice.start_media()
    bob.start_media()
    legs = bob.legs["audio"], alice.legs["audio"]
    conf.runtime.run(legs[0].wait_for_packets(legs[0].received + 25, 5), 10)
    conf.vanish("bob", watch=True)
    assert not legs[0].closed and not legs[0].sending
    rekeys = len(alice.rekeys)

    async def removed() -> None:
        while len(alice.rekeys) == rekeys:
            alice.rekey_arrived.clear()
            await alice.rekey_arrived.wait()

    conf.runtime.run(removed(), LOST_PARTICIPANT_TIMEOUT_S + REKEY_DEADLINE_S + 5)
    assert _legs_of(reference, conference_id) == ["alice"]
    # Half a second of alice's media is the clock: nothing reaches bob's open leg meanwhile
    # (what was in flight when he was removed has long arrived by then).
    conf.runtime.run(legs[1].wait_for_packets(legs[1].received + 10, 5), 10)
    seen = legs[0].received
    conf.runtime.run(legs[1].wait_for_packets(legs[1].received + 25, 5), 10)
    assert legs[0].received == seen
    alice.stop_media()


@pytest.mark.parametrize(
    ("defect", "sends", "mixes"),
    [
        (None, False, False),
        ("mixer-keeps-sending-to-leaver", True, False),
        ("mixer-mixes-leaver", False, True),
    ],
)
def test_what_the_mixer_keeps_of_a_released_leg(
    defect: str | None, sends: bool, mixes: bool
) -> None:
    """Compliant: a released leg is deaf and mute at once, and its sockets close once they had
    `RTCP_LINGER_S` to read the leaver's RTCP BYE. The leaver defects keep half of it until the
    last real leg is released, and then everything goes."""

    async def main() -> None:
        mixer = Mixer(defects=frozenset({defect} if defect else ()))
        for leg in ("alice", "bob"):
            await mixer.allocate("c", leg, ("audio",))
            remote = ("127.0.0.1", 9)
            mixer.install(LegSetup("c", leg, (StreamSetup("audio", 0, remote, None, None, 1),)))
        assert mixer.idle_s("c", "bob") is not None
        bob = mixer._conferences["c"].legs["bob"]["audio"]
        mixer.release("c", "bob")
        assert bob.transport is not None and not bob.transport.is_closing()  # compliant: a moment
        assert bob.released != (sends or mixes)
        assert (bob.remote is not None and bob.installed) == sends
        assert (bob.installed and not bob.deaf) == mixes
        assert mixer.idle_s("c", "bob") is None or sends or mixes
        mixer.release("c", "alice")
        assert "c" not in mixer._conferences and bob.released
        deadline = asyncio.get_running_loop().time() + RTCP_LINGER_S + 5
        while not bob.transport.is_closing() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert bob.transport.is_closing()  # closed by the linger's end, not by close()
        mixer.close()

    asyncio.run(main())
