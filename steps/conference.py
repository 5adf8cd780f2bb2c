"""Steps shared by every feature: the service, creating and joining conferences."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec
from confsec.errors import NotApplicable
from confsec.observed import Observe


@given("the conference service is reachable over SIPS")
def service_reachable(conf: ConferenceRun) -> None:
    if conf.target.calls_out_only:
        raise NotApplicable(
            "the target takes no requests: it only calls its participants (creation_modes = "
            '["dial-out"], participants reached through its adapter), so there is no service '
            "listener to reach; features/dial_out.feature judges it as the caller"
        )
    checks.service_reachable(conf.probe_tls("alice"))


@when(
    parsers.re(
        r"(?P<name>\w+) creates a conference through the factory URI "
        r"with a (?P<offer>[\w ]+?) offer"
    )
)
def create_with_offer(conf: ConferenceRun, name: str, offer: str) -> None:
    conf.create(name, OfferSpec.named(offer))


@when(parsers.parse("{name} creates a conference through the factory URI without credentials"))
def create_without_credentials(conf: ConferenceRun, name: str) -> None:
    conf.create(name, OfferSpec.named("secure"), credentials="none")


@when(parsers.parse("{name} creates a conference through the factory URI with a wrong password"))
def create_wrong_password(conf: ConferenceRun, name: str) -> None:
    conf.create(name, OfferSpec.named("secure"), credentials="wrong")


@given(parsers.parse("the control: {name} creates a secure conference and is admitted"))
def control_creates(conf: ConferenceRun, observed: Observe, name: str) -> None:
    out = conf.create(name, OfferSpec.named("secure"))
    observed(checks.control_admitted(out, name, "a valid, secure creation"))


@given(parsers.parse("the control: {name} joins with a secure offer and is admitted"))
def control_joins(conf: ConferenceRun, observed: Observe, name: str) -> None:
    out = conf.join(name, OfferSpec.named("secure"))
    observed(checks.control_admitted(out, name, "a valid, secure join"))


@given(parsers.re(r"(?P<name>\w+) has created a secure conference(?P<rest>.*)"))
def has_created(conf: ConferenceRun, name: str, rest: str) -> None:
    checks.admitted_secure(conf.create(name, OfferSpec.from_phrase(rest)), name)


@given(parsers.re(r"(?P<name>\w+) has joined the conference(?P<rest>.*)"))
def has_joined(conf: ConferenceRun, name: str, rest: str) -> None:
    checks.admitted_secure(conf.join(name, OfferSpec.from_phrase(rest)), name)


@when(parsers.re(r"(?P<name>\w+) joins the conference with a (?P<offer>[\w ]+?) offer"))
def joins_with_offer(conf: ConferenceRun, name: str, offer: str) -> None:
    conf.join(name, OfferSpec.named(offer))


@then("the focus accepts with a conference URI marked isfocus")
def focus_accepts(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.conference_uri_is_focus(conf.creation, conf.target.factory_uri))


@then("every media stream in the answer is protected with SRTP")
def answer_protected(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.answer_protected(conf.creation))


@then(parsers.parse("{name} is admitted with SRTP"))
def admitted(conf: ConferenceRun, observed: Observe, name: str) -> None:
    observed(checks.admitted_secure(conf.outcome(name), name))


@then(parsers.re(r"(?P<name>\w+) is refused with (?P<codes>\d{3}(?: or \d{3})*)"))
def refused(conf: ConferenceRun, observed: Observe, name: str, codes: str) -> None:
    observed(checks.refused(conf.outcome(name), name, {int(c) for c in codes.split(" or ")}))


@then(parsers.parse("{name} is refused, or answered with full encryption instead of {offer}"))
def null_cipher_not_admitted(conf: ConferenceRun, observed: Observe, name: str, offer: str) -> None:
    observed(checks.null_cipher_not_admitted(conf.outcome(name), name, offer))
