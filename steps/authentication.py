"""Steps for R2: the service's certificate, digest challenges, replay and mutual TLS."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun


@when(parsers.parse("{name} opens a TLS connection to the service"))
def opens_tls(conf: ConferenceRun, name: str) -> None:
    conf.probe_tls(name)


@then("the service certificate validates for the service domain")
def cert_validates(conf: ConferenceRun) -> None:
    checks.certificate_valid_for(conf.last_probe, conf.target.domain)


@then("the service challenges with a SHA-256 digest")
def sha256_challenge(conf: ConferenceRun) -> None:
    checks.digest_challenge(conf.last_outcome, "SHA-256")


@when(
    parsers.parse("{attacker} replays {victim}'s authorization in a new INVITE to the factory URI")
)
def replays(conf: ConferenceRun, attacker: str, victim: str) -> None:
    conf.replay_authorization(attacker, victim)


@when(parsers.parse("{name} connects to the service without a client certificate"))
def without_client_cert(conf: ConferenceRun, name: str) -> None:
    conf.probe_tls(name, client_cert=False, send_request=True)


@then("the service refuses the TLS connection")
def tls_refused(conf: ConferenceRun) -> None:
    checks.tls_refused(conf.last_probe)
