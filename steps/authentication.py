"""Steps for R2: the service's certificate, digest challenges, replay, mutual TLS, and the
insecure-surface probes (user enumeration over SIPS and plain UDP, dictionary passwords)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from confsec.behaviour import checks, probes, surface, udp_probes
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@when(parsers.parse("{name} opens a TLS connection to the service"))
def opens_tls(conf: ConferenceRun, name: str) -> None:
    conf.probe_tls(name)


@then("the service certificate validates for the service domain")
def cert_validates(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.certificate_valid_for(conf.last_probe, conf.target.domain))


@then("the service challenges with a SHA-256 digest")
def sha256_challenge(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.digest_challenge(conf.last_outcome, "SHA-256"))


@when(
    parsers.parse("{attacker} replays {victim}'s authorization in a new INVITE to the factory URI")
)
def replays(conf: ConferenceRun, attacker: str, victim: str) -> None:
    conf.replay_authorization(attacker, victim)


@when(parsers.parse("{name} connects to the service without a client certificate"))
def without_client_cert(conf: ConferenceRun, name: str) -> None:
    conf.probe_tls(name, client_cert=False, send_request=True)


@when(
    parsers.parse("{name} connects to the service presenting a client certificate that is {flaw}")
)
def with_flawed_client_cert(conf: ConferenceRun, name: str, flaw: str) -> None:
    conf.probe_tls(name, send_request=True, flawed=flaw)


@given(parsers.parse("{name}, presenting a client certificate, is answered over TLS"))
def tls_control(conf: ConferenceRun, name: str) -> None:
    conf.tls_control = conf.probe_tls(name, client_cert=True, send_request=True)
    checks.tls_control(conf.tls_control, name)


@then("the service refuses the TLS connection")
def tls_refused(conf: ConferenceRun, observed: Observe) -> None:
    observed(checks.tls_refused(conf.last_probe, conf.tls_control))


@when(
    parsers.parse(
        "up to {accounts:d} accounts and {decoys:d} unknown users each present a wrong password"
    ),
    target_fixture="refusals",
)
def wrong_passwords(conf: ConferenceRun, accounts: int, decoys: int) -> list[probes.DigestAttempt]:
    return surface.wrong_passwords(conf, accounts, decoys)


@then("the refusals do not tell existing users from unknown ones")
def refusals_alike(refusals: list[probes.DigestAttempt], observed: Observe) -> None:
    observed(probes.refusals_alike(refusals))


@when("sipvicious probes every plain UDP listener for users", target_fixture="udp_surfaces")
def sipvicious_probes(conf: ConferenceRun) -> list[udp_probes.UdpSurface]:
    return surface.udp_surfaces(conf)


@then("no listener tells existing users from unknown ones")
def udp_no_enumeration(udp_surfaces: list[udp_probes.UdpSurface], observed: Observe) -> None:
    observed(udp_probes.udp_no_enumeration(udp_surfaces))


@when(
    parsers.parse("up to {accounts:d} accounts are tried with every word of the dictionary"),
    target_fixture="dictionary_trials",
)
def dictionary(conf: ConferenceRun, accounts: int) -> list[probes.DictionaryTrial]:
    return surface.dictionary_trials(conf, accounts)


@then("no dictionary word gets past authentication")
def no_dictionary_password(
    dictionary_trials: list[probes.DictionaryTrial], observed: Observe
) -> None:
    observed(probes.no_dictionary_password(dictionary_trials))
