"""Steps for O1/O6: the interfaces inside the service that carry media keys."""

from __future__ import annotations

from pytest_bdd import then, when

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.key_interfaces import probe_interfaces
from confsec.observed import Observe


@when("the suite connects to every internal key interface with TLS")
@when("the suite connects to every internal key interface with TLS and no client certificate")
def connect_interfaces_anonymously(conf: ConferenceRun) -> None:
    probe_interfaces(conf, "none")


@when("the suite connects to every internal key interface with a participant's certificate")
def connect_interfaces_as_participant(conf: ConferenceRun) -> None:
    probe_interfaces(conf, "participant")


@then("every internal key interface presents a certificate valid for its name")
def interfaces_protected(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.interfaces_protected(conf.interface_probes))


@then("every internal key interface refuses the connection")
def interfaces_refuse(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.interfaces_refuse(conf.interface_probes, "no certificate"))


@then("every internal key interface refuses the participant's certificate")
def interfaces_refuse_participant(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.interfaces_refuse(conf.interface_probes, "a participant's certificate"))
