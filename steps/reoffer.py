"""Steps for the secure policy on in-dialog offers (R3): a participant's own re-INVITEs and
UPDATEs, the control that comes first, and what the session looks like after a refusal."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import reoffer, reoffer_checks
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@pytest.fixture
def reoffers(conf: ConferenceRun) -> reoffer.Reoffers:
    return reoffer.Reoffers(conf)


@given(
    parsers.parse(
        "the control: {name} re-keys the session with a re-INVITE, and both directions move to "
        "the new keys"
    )
)
def reoffer_control(reoffers: reoffer.Reoffers, observed: Observe, name: str) -> None:
    observed(reoffers.control(name))


@when(parsers.parse("{name} offers {offer} by {method} in the dialog with the focus"))
def reoffer_sent(reoffers: reoffer.Reoffers, name: str, offer: str, method: str) -> None:
    reoffers.offer(name, method, offer)


@then(parsers.parse("the focus refuses the {method} with 488 and the dialog goes on"))
def reoffer_refused(reoffers: reoffer.Reoffers, observed: Observe, method: str) -> None:
    observed(reoffer_checks.offer_refused(reoffers.judged(), reoffers.control_evidence))


@then(
    parsers.parse(
        "{name} and the others still exchange media under the keys they had before the {method}"
    )
)
def reoffer_kept_keys(
    reoffers: reoffer.Reoffers, conf: ConferenceRun, observed: Observe, name: str, method: str
) -> None:
    p, others = conf.participant(name), [o for o in conf.participants.values() if o.name != name]
    sent = conf.last_exchange_sent.get(name, 0)
    observed(
        reoffer_checks.kept_previous_keys(
            reoffers.judged(), p, others, sent, reoffers.control_evidence
        )
    )
