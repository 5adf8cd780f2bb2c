"""Steps for the media robustness probes: truncated, replayed and forged SRTP."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import media_abuse as ma
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@pytest.fixture
def media_abuse(conf: ConferenceRun) -> ma.MediaAbuse:
    """The scenario's media windows (conf's teardown stops media and leaves with BYE)."""
    return ma.MediaAbuse(conf)


def _published(request: pytest.FixtureRequest, key: str, window: ma.Window) -> ma.Window:
    """Put the window's numbers among the scenario's measured numbers (its evidence)."""
    request.node.user_properties.append((key, ma.measurements(window)))
    return window


@given(parsers.parse("everyone has been heard by the others for {seconds:g} second"))
def heard_by_others(
    request: pytest.FixtureRequest, media_abuse: ma.MediaAbuse, seconds: float
) -> None:
    ma.everyone_heard(_published(request, "media_baseline", media_abuse.exchange(seconds)))


@given(
    parsers.parse(
        "everyone has been heard by the others for {seconds:g} second, "
        "with {name}'s SRTP packets recorded"
    )
)
def heard_and_recorded(
    request: pytest.FixtureRequest, media_abuse: ma.MediaAbuse, seconds: float, name: str
) -> None:
    window = media_abuse.exchange(seconds, record=name)
    ma.everyone_heard(_published(request, "media_baseline", window))


@when(
    parsers.parse(
        "everyone sends its tone for {seconds:g} second and {name} also sends truncated SRTP "
        "packets"
    )
)
def sends_truncated(
    request: pytest.FixtureRequest, media_abuse: ma.MediaAbuse, name: str, seconds: float
) -> None:
    _published(request, "media_probe", media_abuse.abuse(seconds, name, ma.TRUNCATED))


@when(
    parsers.parse(
        "{name} replays her recorded SRTP packets for {seconds:g} second while the others send "
        "their tones"
    )
)
def replays(
    request: pytest.FixtureRequest, media_abuse: ma.MediaAbuse, name: str, seconds: float
) -> None:
    _published(request, "media_probe", media_abuse.abuse(seconds, name, ma.REPLAYED))


@when(
    parsers.parse(
        "{name} sends her tone with a corrupted SRTP tag for {seconds:g} second while the "
        "others send theirs"
    )
)
def sends_forged(
    request: pytest.FixtureRequest, media_abuse: ma.MediaAbuse, name: str, seconds: float
) -> None:
    _published(request, "media_probe", media_abuse.abuse(seconds, name, ma.FORGED))


@then(parsers.re(r"(?P<listener>\w+) still hears (?P<speakers>\w+(?: and \w+)*)"))
def still_hears(
    media_abuse: ma.MediaAbuse, observed: Observe, listener: str, speakers: str
) -> None:
    window = (media_abuse.baseline, media_abuse.probe)
    observed(ma.still_hears(*window, listener, speakers.split(" and ")))


@then(
    parsers.re(
        r"(?P<listener>\w+) does not hear (?P<speaker>\w+)'s (?P<abuse>replayed|forged) packets"
    )
)
def not_heard(
    media_abuse: ma.MediaAbuse, observed: Observe, listener: str, speaker: str, abuse: str
) -> None:
    window = (media_abuse.baseline, media_abuse.probe)
    observed(ma.does_not_hear(*window, listener, speaker, abuse))
