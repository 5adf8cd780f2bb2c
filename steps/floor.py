"""Steps for R8 (O5): floor control negotiated in SDP and spoken over BFCP/TLS.

Then-steps hand what their check observed to `observed`: a scenario cannot pass on no evidence.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_bdd import given, parsers, then, when

from confsec.behaviour import floor as fl
from confsec.behaviour import floor_binding as fb
from confsec.behaviour import floor_checks as fc
from confsec.behaviour.conference import ConferenceRun
from confsec.observed import Observe


@pytest.fixture
def floor(conf: ConferenceRun) -> Iterator[fl.FloorRun]:
    run = fl.FloorRun(conf)
    yield run
    run.close()


@pytest.fixture
def firsts(floor: fl.FloorRun) -> fb.FirstMessages:
    return fb.FirstMessages(floor)


@when(parsers.parse("{name} joins offering floor control over {proto}"))
def joins_offering(floor: fl.FloorRun, name: str, proto: str) -> None:
    floor.join(name, proto)


@given(parsers.parse("{name} is in the conference with floor control over TLS"))
def in_with_floor(floor: fl.FloorRun, name: str) -> None:
    fc.answer_secure(floor.join(name, fl.SECURE))


@given(
    parsers.parse(
        "{name} is in the conference with floor control over TLS, {whose} offer naming "
        "{other}'s certificate"
    )
)
def in_naming_other_cert(floor: fl.FloorRun, name: str, other: str) -> None:
    fc.answer_secure(floor.join(name, fl.SECURE, cert_of=other))


@when(
    parsers.parse(
        "{name} sends a {message} under {whose} own user id first on a fresh floor control "
        "connection"
    )
)
def first_own(firsts: fb.FirstMessages, name: str, message: str) -> None:
    firsts.send(name, message)


@when(
    parsers.parse(
        "{name} sends a {message} with {other}'s user id first on a fresh floor control connection"
    )
)
def first_foreign(firsts: fb.FirstMessages, name: str, message: str, other: str) -> None:
    firsts.send(name, message, as_user=other)


@when(parsers.parse("{name} opens the floor control connection"))
def opens(floor: fl.FloorRun, name: str) -> None:
    floor.connect(name)


@when(parsers.parse("{name} requests the floor with {other}'s user id"))
def requests_as(floor: fl.FloorRun, name: str, other: str) -> None:
    fc.hello_answered(floor.hello(name))
    floor.request_floor(name, as_user=other)


@when(parsers.parse("{name} requests the floor and releases it"))
@when(parsers.parse("{name} requests the floor under {whose} own user id and releases it"))
def request_release(floor: fl.FloorRun, name: str) -> None:
    floor.request_and_release(name)


@when(parsers.parse("{name} sends a Hello and then {count:d} malformed BFCP messages"))
def sends_malformed(floor: fl.FloorRun, name: str, count: int) -> None:
    floor.send_malformed(name, count)


@then(
    parsers.parse("the answer to {name} carries floor control over TCP/TLS/BFCP with a fingerprint")
)
def answer_secure(floor: fl.FloorRun, observed: Observe, name: str) -> None:
    observed(fc.answer_secure(floor.session(name)))


@then(parsers.parse("floor control over plain TCP is refused to {name}"))
def plain_refused(floor: fl.FloorRun, observed: Observe, name: str) -> None:
    observed(fc.plain_refused(floor.session(name), floor.others(name)))


@then("the floor control server's certificate matches the fingerprint in the answer")
def fp_matches(floor: fl.FloorRun, observed: Observe) -> None:
    for s in floor.sessions.values():
        observed(fc.fingerprint_matches(s))


@then(parsers.parse("the floor control server refuses {name}'s request with an Error"))
def foreign_refused(floor: fl.FloorRun, observed: Observe, name: str) -> None:
    other = floor.last_claimed or "another participant"
    observed(fc.foreign_request_refused(floor.last_answer, name, other, floor.session(name)))


@then(
    parsers.parse(
        "the floor control server refuses {name}'s first {message} with {other}'s user id and "
        "grants nothing"
    )
)
def first_refused(firsts: fb.FirstMessages, observed: Observe, name: str, other: str) -> None:
    observed(fc.first_foreign_refused(firsts.last(name), firsts.last(name, other)))


@then(
    parsers.parse(
        "the floor control server refuses {name}'s certificate, which {whose} offer did not name, "
        "and grants nothing"
    )
)
def mismatch_refused(firsts: fb.FirstMessages, observed: Observe, name: str) -> None:
    control = next((f for f in firsts.sent if f.sender != name), None)
    observed(fc.mismatched_certificate_refused(control, firsts.last(name)))


@then(parsers.parse("{name} was granted the floor and then released it over TLS"))
def granted(floor: fl.FloorRun, observed: Observe, name: str) -> None:
    observed(fc.granted_and_released(floor.session(name)))


@then("every malformed message was answered with an Error or a close")
def malformed_handled(floor: fl.FloorRun, observed: Observe) -> None:
    observed(fc.malformed_handled(floor.fuzz_probes, floor.fuzz_baseline))


@then(
    parsers.parse(
        "{name} was still granted the floor after the malformed messages and released it over TLS"
    )
)
def still_serving(floor: fl.FloorRun, observed: Observe, name: str) -> None:
    observed(fc.still_serving(floor.session(name), floor.fuzz_baseline, floor.fuzz_ended))
