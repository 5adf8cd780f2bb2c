"""Steps for O1/O6: the interfaces inside the service that carry media keys."""

from __future__ import annotations

from pytest_bdd import then, when

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun


@when("the suite connects to every internal key interface with TLS")
def connect_interfaces(conf: ConferenceRun) -> None:
    conf.probe_interfaces(client_cert=True)


@when("the suite connects to every internal key interface with TLS and no client certificate")
def connect_interfaces_anonymously(conf: ConferenceRun) -> None:
    conf.probe_interfaces(client_cert=False)


@then("every internal key interface completes TLS with a certificate for its name")
def interfaces_protected(conf: ConferenceRun) -> None:
    checks.interfaces_protected(conf.interface_probes)


@then("every internal key interface refuses the connection")
def interfaces_refuse(conf: ConferenceRun) -> None:
    checks.interfaces_refuse_anonymous(conf.interface_probes)
