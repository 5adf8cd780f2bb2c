"""Steps for R3 and R4: sending tones, what each participant received, the key-stream ledger."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@when(parsers.parse("every participant sends its tone for {seconds:g} second"))
@when(parsers.parse("every participant sends its tone for {seconds:g} seconds"))
def send_tones(conf: ConferenceRun, seconds: float) -> None:
    conf.exchange_media(seconds)


@when(
    parsers.parse(
        "{name} sends plain RTP instead of SRTP while the others send their tones "
        "for {seconds:g} second"
    )
)
def sends_plain(conf: ConferenceRun, name: str, seconds: float) -> None:
    conf.exchange_media(seconds, plain={name})


@given(parsers.parse("the others hear {speaker} over protected media"))
def heard_over_srtp(conf: ConferenceRun, observed: Observe, speaker: str) -> None:
    conf.exchange_media(1.0)
    others = [p for n, p in conf.participants.items() if n != speaker]
    observed(checks.heard_by_all(conf.participant(speaker), others))


@then("every media packet each participant received authenticates under the negotiated key")
def media_authenticates(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.media_authenticates(conf.participants.values()))


@then("every participant hears the others' tones and not its own")
def hears_others(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.hears_others(conf.participants.values()))


@then(parsers.parse("every answer selected {suite}"))
def answers_selected(conf: ConferenceRun, observed: Observe, suite: str) -> None:
    for outcome in conf.outcomes.values():
        observed(checks.suite_selected(outcome, suite))


@then(parsers.parse("{listener} does not hear {speaker}'s tone"))
def does_not_hear(conf: ConferenceRun, observed: Observe, listener: str, speaker: str) -> None:
    sent = conf.last_exchange_sent.get(speaker, 0)
    observed(checks.does_not_hear(conf.participant(listener), conf.participant(speaker), sent))


@then(parsers.parse("no key stream is shared between {scope}"))
def no_shared(conf: ConferenceRun, observed: Observe, scope: str) -> None:
    observed(checks.no_key_stream_reuse(conf.ledger, scope))
    conf.note_ledger_observations()


@then("every stream in the ledger has its own key stream")
def ledger_distinct(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.no_key_stream_reuse(conf.ledger, "any"))
    conf.note_ledger_observations()


@then("every stream in the ledger carried packets")
def ledger_packets(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.every_stream_observed(conf.ledger))
