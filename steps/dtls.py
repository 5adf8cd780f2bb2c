"""Steps of DTLS-SRTP key management (features/dtls_srtp.feature): see
confsec.behaviour.dtls_media (how a participant keys its legs) and dtls_checks (the judgements).
"""

from __future__ import annotations

from pytest_bdd import parsers, then

from confsec.behaviour import dtls_checks
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@then(parsers.parse("{name} is refused, or answered with DTLS-SRTP and no key in the signalling"))
def sdes_not_taken(conf: ConferenceRun, observed: Observe, name: str) -> None:
    observed(dtls_checks.refused_or_dtls(conf.outcome(name), name))


@then(
    parsers.parse(
        "{name}'s DTLS association did not complete and no media reached her or came from her"
    )
)
def no_association(conf: ConferenceRun, observed: Observe, name: str) -> None:
    others = [p for n, p in conf.participants.items() if n != name]
    observed(dtls_checks.no_association(conf.outcome(name), conf.participant(name), others))


@then(
    parsers.parse(
        "nothing reached {first} or {second} before their DTLS handshakes completed, and all "
        "that came after authenticated"
    )
)
def no_media_before_keys(conf: ConferenceRun, observed: Observe, first: str, second: str) -> None:
    parties = [conf.participant(first), conf.participant(second)]
    observed(dtls_checks.no_media_before_keys(parties))
