"""R3's judgement of received media: a finding on one leg stands when another leg is silent."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from confsec.behaviour import checks
from confsec.behaviour.participant import MediaStats
from confsec.errors import Inconclusive, NonConformance


@dataclass
class Observed:
    """What `media_authenticates` reads from a participant: its name and per-medium stats."""

    name: str
    stats: dict[str, MediaStats] = field(default_factory=dict)

    def receive_stats(self) -> dict[str, MediaStats]:
        return self.stats


def got(received: int, authenticated: int) -> dict[str, MediaStats]:
    return {"audio": MediaStats(received, authenticated, received - authenticated, 0, 0)}


def test_all_authenticated_passes() -> None:
    checks.media_authenticates([Observed("alice", got(50, 50)), Observed("bob", got(49, 49))])


def test_a_bad_packet_fails() -> None:
    with pytest.raises(NonConformance, match="bob: 1 of 50 audio packets did not authenticate"):
        checks.media_authenticates([Observed("alice", got(50, 50)), Observed("bob", got(50, 49))])


def test_a_failure_on_one_leg_is_not_hidden_by_a_silent_leg() -> None:
    with pytest.raises(NonConformance, match="bob: 50 of 50"):
        checks.media_authenticates([Observed("alice", got(0, 0)), Observed("bob", got(50, 0))])


def test_a_silent_leg_is_inconclusive() -> None:
    with pytest.raises(Inconclusive, match="alice received no audio packets: nothing to judge"):
        checks.media_authenticates([Observed("alice", got(0, 0)), Observed("bob", got(50, 50))])


def test_no_stream_at_all_is_inconclusive_not_a_pass() -> None:
    with pytest.raises(Inconclusive, match="no participant has a media stream"):
        checks.media_authenticates([Observed("alice"), Observed("bob")])
