"""Steps for conferences that call their participants: dial-out, REFER, UA-hosted conferences
(R1, R2, R3, R4, R6, R7 for participants the service calls)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import dialout_checks as dc
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.dialout import NOT_CALLED_WATCH_S, DialOutRun, ReferOutcome, names_of
from confsec.behaviour.membership import Membership
from confsec.observed import Observe


@pytest.fixture
def dialout(conf: ConferenceRun) -> Iterator[DialOutRun]:
    run = DialOutRun(conf)
    yield run
    run.close()


@pytest.fixture
def refer_outcome() -> dict[str, ReferOutcome]:
    """The last REFER a step sent, for the Then-steps that judge it."""
    return {}


@given(parsers.re(r"(?P<names>[\w ,]+?) can be called by the conference service$"))
def can_be_called(dialout: DialOutRun, names: str) -> None:
    for name in names_of(names):
        dialout.callable(name)


@given(parsers.parse("{name} can be called but answers only plain RTP"))
def plain_only(dialout: DialOutRun, name: str) -> None:
    dialout.callable(name, mode="plain-only")


@given(parsers.parse("{name} can be called and its answer claims to be {claimed}"))
def claiming(dialout: DialOutRun, name: str, claimed: str) -> None:
    dialout.callable(name, claim=claimed)


@given(parsers.re(r"(?P<creator>\w+) has started a conference that calls its participants"))
def started(dialout: DialOutRun, creator: str) -> None:
    dialout.start(creator)


@given(parsers.re(r"(?P<referrer>\w+) has had the service call (?P<names>[\w ,]+)$"))
@when(parsers.re(r"(?P<referrer>\w+) has the service call (?P<names>[\w ,]+)$"))
def has_called(dialout: DialOutRun, referrer: str, names: str) -> None:
    for name in names_of(names):
        dialout.add(referrer, name)


@given(parsers.parse("the control: {referrer} has had the service call {name}"))
def control_called(dialout: DialOutRun, observed: Observe, referrer: str, name: str) -> None:
    """The positive control of the REFER refusals: a member's REFER does make the service
    call, and the user it called answers (so a user not called later was not called because
    the REFER was refused, not because calls cannot reach it)."""
    dialout.add(referrer, name)
    calls = {name: dialout.answering_of(name).calls}
    observed(dc.control_called(calls, dialout.conf.participants))


@when(parsers.parse("{referrer} asks the service, in a REFER, to call {name}"))
def refer_only(dialout: DialOutRun, refer_outcome: dict, referrer: str, name: str) -> None:
    out = dialout.refer(referrer, name)
    refer_outcome["last"] = dialout.await_progress(out)


@when(parsers.parse("{referrer}, without credentials, asks the service in a REFER to call {name}"))
def refer_unauthenticated(dialout: DialOutRun, refer_outcome: dict, referrer: str, name: str):
    refer_outcome["last"] = dialout.refer(referrer, name, credentials="none")


@when(parsers.parse("{referrer} asks the service to call {name}, giving a Contact over plain UDP"))
def refer_plain_contact(dialout: DialOutRun, refer_outcome: dict, referrer: str, name: str):
    out = dialout.refer_with_plain_contact(referrer, name)
    refer_outcome["last"] = dialout.await_progress(out)


@when(parsers.parse("{referrer} has the service call {name}, in the membership's timing"))
def added_in_membership(
    dialout: DialOutRun, membership: Membership, referrer: str, name: str
) -> None:
    dialout.add_event(membership, referrer, name)


@when(parsers.parse("{referrer} has the service remove {name}"))
def removed(dialout: DialOutRun, membership: Membership, referrer: str, name: str) -> None:
    dialout.remove_event(membership, referrer, name)


@then(parsers.parse("every call the service placed to {names} offered SRTP only, over TLS"))
def offers_srtp_only(dialout: DialOutRun, observed: Observe, names: str) -> None:
    calls = {n: dialout.answering_of(n).calls for n in names_of(names)}
    observed(dc.offers_srtp_only(calls))


@then(
    parsers.re(
        r"(?P<names>[\w ,]+) answered the service's call and (?:is|are) in the conference with SRTP"
    )
)
def admitted(dialout: DialOutRun, observed: Observe, names: str) -> None:
    calls = {n: dialout.answering_of(n).calls for n in names_of(names)}
    observed(dc.called_and_admitted(calls, dialout.conf.participants))


@then(
    parsers.parse("the service authenticated itself to {names} with a certificate for its domain")
)
def authenticated(dialout: DialOutRun, observed: Observe, names: str) -> None:
    calls = {n: dialout.answering_of(n).calls for n in names_of(names)}
    observed(dc.service_authenticated(calls, dialout.conf.target.domain))


@then(parsers.parse("{name} is not in the conference unprotected, watched for {seconds:g} seconds"))
def not_unprotected(
    dialout: DialOutRun, refer_outcome: dict, observed: Observe, name: str, seconds: float
) -> None:
    calls = dialout.listen(name, seconds)
    invitee = dialout.conf.participants[name]
    observed(dc.not_admitted_unprotected(calls, invitee, refer_outcome.get("last"), seconds))


@then(
    parsers.parse(
        "the REFER is refused and, listening for {seconds:g} seconds, {name} is not called"
    )
)
def refused(
    dialout: DialOutRun, refer_outcome: dict, observed: Observe, seconds: float, name: str
) -> None:
    calls = dialout.listen(name, seconds or NOT_CALLED_WATCH_S)
    observed(dc.refer_refused(refer_outcome["last"], calls, seconds))


@then("the progress of the REFER reached the referrer only over TLS")
def progress_tls(refer_outcome: dict, observed: Observe) -> None:
    observed(dc.progress_over_tls(refer_outcome["last"]))
