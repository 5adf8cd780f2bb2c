"""Steps for R3 and R4: sending tones, what each participant received, the key-stream ledger."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun


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


@then("every media packet each participant received authenticates under the negotiated key")
def media_authenticates(conf: ConferenceRun) -> None:
    checks.media_authenticates(conf.participants.values())


@then("every participant hears the others' tones and not its own")
def hears_others(conf: ConferenceRun) -> None:
    checks.hears_others(conf.participants.values())


@then(parsers.parse("{listener} does not hear {speaker}'s tone"))
def does_not_hear(conf: ConferenceRun, listener: str, speaker: str) -> None:
    checks.does_not_hear(conf.participant(listener), conf.participant(speaker))


@then(parsers.parse("no key stream is shared between {scope}"))
def no_shared(conf: ConferenceRun, scope: str) -> None:
    checks.no_key_stream_reuse(conf.ledger, scope)


@then("every stream in the ledger has its own key stream")
def ledger_distinct(conf: ConferenceRun) -> None:
    checks.no_key_stream_reuse(conf.ledger, "any")


@then("every stream in the ledger carried packets")
def ledger_packets(conf: ConferenceRun) -> None:
    checks.every_stream_observed(conf.ledger)
