"""Steps for R3 on RTCP: the target's SRTCP, and plain RTCP a participant sends."""

from __future__ import annotations

import pytest
from pytest_bdd import parsers, then, when

from confsec.behaviour import rtcp_checks
from confsec.behaviour.conference import ConferenceRun
from confsec.errors import Inconclusive
from confsec.observed import Observe


@pytest.fixture
def rtcp_probes() -> list[rtcp_checks.RtcpProbe]:
    """The probes this scenario sent, newest last."""
    return []


@when(
    parsers.parse(
        "{name} sends plain RTCP and SRTCP under a key nobody holds while the others send "
        "their tones for {seconds:g} seconds"
    )
)
def sends_plain_rtcp(
    conf: ConferenceRun, rtcp_probes: list[rtcp_checks.RtcpProbe], name: str, seconds: float
) -> None:
    sender = conf.participant(name)
    rtcp_probes.append(conf.runtime.run(rtcp_checks.probe(sender), 5, "RTCP probes"))
    conf.exchange_media(seconds)


@when(parsers.parse("the target's RTCP has reached every participant, within {seconds:g} seconds"))
def rtcp_reached(conf: ConferenceRun, seconds: float) -> None:
    everyone = list(conf.participants.values())
    conf.runtime.run(rtcp_checks.rtcp_reached(everyone, seconds), seconds + 5, "awaiting RTCP")


@then("every RTCP packet each participant received is SRTCP that authenticates")
def srtcp_authenticates(conf: ConferenceRun, observed: Observe) -> None:
    observed(rtcp_checks.srtcp_from_target(conf.participants.values()))


@then(parsers.parse("no other participant receives {name}'s plain RTCP"))
def plain_rtcp_not_passed_on(
    conf: ConferenceRun, rtcp_probes: list[rtcp_checks.RtcpProbe], observed: Observe, name: str
) -> None:
    sent = next((p for p in reversed(rtcp_probes) if p.sender == name), None)
    if sent is None:
        raise Inconclusive(f"{name} has sent no RTCP probes in this scenario")
    others = [p for n, p in conf.participants.items() if n != name]
    observed(rtcp_checks.plain_rtcp_not_relayed(conf.participant(name), others, sent))
