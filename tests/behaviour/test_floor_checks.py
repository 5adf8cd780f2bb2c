"""R8's judgements on hand-built BFCP observations (no server): every pass rests on evidence.

Each check of `confsec.behaviour.floor` is called here on what a floor control server might have
answered: an Error is a refusal only when the same participant's own request was granted on the
same kind of connection (the control), a malformed message must get an Error or a close and
nothing else, a probe that never reached the server proves nothing, and a server the suite could
not reach at all is an error of the environment, not a finding, except after the suite saw it
serve and then saw it gone.

`judge` gives the verdict the way the plugin does (`classify`; a pass on no evidence is
inconclusive), so a check that raises the wrong kind of exception fails a test here instead of
being turned into a skip.
"""

from __future__ import annotations

import ssl

from confsec.behaviour import floor as fl
from confsec.behaviour import floor_binding as fb
from confsec.behaviour import floor_checks as fc
from confsec.behaviour.outcomes import CallOutcome
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp
from confsec.errors import TransportError
from confsec.net.bfcp import Received
from confsec.report.verdicts import Verdict
from tests.behaviour.judging import judge, passes_on_evidence

PASS, FAIL = Verdict.PASS, Verdict.FAIL
INCONCLUSIVE, ERROR = Verdict.INCONCLUSIVE, Verdict.ERROR
FP = "AB:CD:" + ":".join(["00"] * 30)


def received(primitive: int, *attrs: b.BfcpAttribute) -> Received:
    raw = bytes(
        Bfcp(
            primitive=primitive,
            R=1,
            conference_id=1,
            transaction_id=1,
            user_id=2,
            attributes=list(attrs),
        )
    )
    return Received(raw, Bfcp(raw))


def status(code: int) -> Received:
    """A FloorRequestStatus whose request is in state `code` (3 Granted, 6 Released, 1 Pending)."""
    return received(
        4,
        b.BfcpFloorRequestInformation(
            floor_request_id=7,
            attributes=[
                b.BfcpOverallRequestStatus(
                    floor_request_id=7, attributes=[b.BfcpRequestStatus(request_status=code)]
                )
            ],
        ),
    )


AN_ERROR = received(
    b.Primitive.ERROR, b.BfcpErrorCode(error_code=b.ErrorCode.UNAUTHORIZED_OPERATION)
)
HELLO_ACK = received(b.Primitive.HELLO_ACK)
GRANTED = status(b.RequestStatus.GRANTED)
RELEASED = status(b.RequestStatus.RELEASED)
PENDING = status(b.RequestStatus.PENDING)


def session(name: str = "bob", **observed: object) -> fl.FloorSession:
    """An admitted participant's floor session with the given observations set on it."""
    s = fl.FloorSession(name, CallOutcome(name, "sips:conf@example.com", 200, "OK"))
    for key, value in observed.items():
        setattr(s, key, value)
    return s


def cycled(
    name: str = "bob", *, started: float = 10.0, tls: bool = True, **answers: object
) -> fl.FloorSession:
    """A session whose request-and-release cycle got `answers` (Hello, FloorRequest,
    FloorRelease; "unsent" was not sent, None is a close)."""
    default: dict[str, object] = {"Hello": HELLO_ACK, "FloorRequest": GRANTED}
    default["FloorRelease"] = RELEASED
    got = {k: v for k, v in (default | answers).items() if v != "unsent"}
    cycle = fl.FloorCycle(started=started, connected=True, tls=tls, answers=got)  # type: ignore[arg-type]
    return session(name, cycle=cycle)


# -- a foreign user id, refused; the control is bob's own request -------------------------------


def test_an_error_without_a_control_is_inconclusive() -> None:
    verdict, why = judge(fc.foreign_request_refused, AN_ERROR, "bob", "carol")
    assert verdict == INCONCLUSIVE and "control" in why


def test_an_error_when_bob_own_request_is_not_granted_is_inconclusive() -> None:
    control = cycled(FloorRequest=AN_ERROR, FloorRelease="unsent")
    verdict, why = judge(fc.foreign_request_refused, AN_ERROR, "bob", "carol", control)
    assert verdict == INCONCLUSIVE and "control" in why


def test_an_error_when_bob_own_cycle_ran_without_tls_is_inconclusive() -> None:
    control = cycled(tls=False)
    verdict, why = judge(fc.foreign_request_refused, AN_ERROR, "bob", "carol", control)
    assert verdict == INCONCLUSIVE and "control" in why


def test_an_error_or_a_close_with_the_control_passes_on_evidence() -> None:
    for got in (AN_ERROR, None):
        verdict, why = judge(fc.foreign_request_refused, got, "bob", "carol", cycled())
        assert verdict == PASS and "own user id" in why


def test_a_granted_foreign_request_fails_whatever_the_control() -> None:
    for control in (None, cycled(), cycled(FloorRequest=PENDING)):
        verdict, why = judge(fc.foreign_request_refused, GRANTED, "bob", "carol", control)
        assert verdict == FAIL and "carol's user id" in why


# -- malformed BFCP -------------------------------------------------------------------------------


def probes(*results: str) -> list[fl.FuzzProbe]:
    return [fl.FuzzProbe(bytes([0x20, 1, 0, 0]), r) for r in results]


def test_a_non_error_answer_to_a_malformed_message_fails() -> None:
    verdict, why = judge(fc.malformed_handled, probes(*["error"] * 19, "answered"), "HelloAck")
    assert verdict == FAIL and "1 of 20" in why


def test_a_non_error_answer_fails_even_without_the_baseline() -> None:
    assert judge(fc.malformed_handled, probes("error", "answered"))[0] == FAIL


def test_probes_that_never_reached_the_server_are_not_evidence() -> None:
    verdict, why = judge(fc.malformed_handled, probes(*["unsent"] * 20))
    assert verdict == INCONCLUSIVE and "none of the 20" in why
    verdict, why = judge(fc.malformed_handled, probes(*["unsent"] * 20), "HelloAck")
    assert verdict == INCONCLUSIVE and "none of the 20" in why


def test_undelivered_probes_do_not_count_as_handled() -> None:
    ev = fc.malformed_handled(probes("closed", *["unsent"] * 19), "HelloAck")
    assert ev.counts["malformed messages delivered"] == 1
    assert ev.counts["malformed messages not delivered"] == 19


def test_silence_is_a_hang() -> None:
    verdict, why = judge(fc.malformed_handled, probes("error", "silent"), "HelloAck")
    assert verdict == FAIL and "neither an Error nor a close" in why


def test_errors_without_a_served_hello_before_are_inconclusive() -> None:
    """A server that answers Error to everything would pass unearned without the baseline."""
    for baseline in (None, "Error", "closed", "silent"):
        verdict, why = judge(fc.malformed_handled, probes(*["error"] * 20), baseline)
        assert verdict == INCONCLUSIVE and "Hello" in why, baseline


def test_errors_and_closes_after_a_served_hello_pass_on_evidence() -> None:
    ev = fc.malformed_handled(probes(*["error"] * 18, "closed", "closed"), "HelloAck")
    assert ev and ev.counts["Errors"] == 18 and ev.counts["closes"] == 2


def test_an_unreachable_server_before_the_probes_is_an_error() -> None:
    verdict, why = judge(fc.malformed_handled, probes(*["unsent"] * 20), "unreachable")
    assert verdict == ERROR and "TargetUnreachable" in why


def test_a_server_that_refuses_connections_after_the_probes_stopped_serving() -> None:
    carol = session("carol", connect_error="connection refused", unreachable=True)
    carol.cycle = fl.FloorCycle(started=20.0, connected=False)
    verdict, why = judge(fc.still_serving, carol, "HelloAck", 15.0)
    assert verdict == FAIL and "stopped serving" in why


def test_a_server_that_goes_silent_after_the_probes_stopped_serving() -> None:
    carol = cycled("carol", started=20.0, FloorRequest="unsent", FloorRelease="unsent")
    carol.cycle.silent = "FloorRequest"  # type: ignore[union-attr]
    verdict, why = judge(fc.still_serving, carol, "HelloAck", 15.0)
    assert verdict == FAIL and "stopped serving" in why


def test_still_serving_needs_the_request_after_the_probes_and_a_baseline() -> None:
    verdict, why = judge(fc.still_serving, cycled("carol", started=10.0), "HelloAck", 15.0)
    assert verdict == INCONCLUSIVE and "after the malformed" in why
    verdict, why = judge(fc.still_serving, cycled("carol", started=20.0), "unreachable", 15.0)
    assert verdict == INCONCLUSIVE and "Hello" in why


def test_a_grant_after_the_probes_shows_the_server_still_serves() -> None:
    verdict, why = judge(fc.still_serving, cycled("carol", started=20.0), "HelloAck", 15.0)
    assert verdict == PASS and "controls" in why


# -- one rule for an unreachable BFCP server -----------------------------------------------------


def test_granted_and_released_on_an_unreachable_server_is_an_error() -> None:
    s = session(connect_error="cannot open BFCP connection: refused", unreachable=True)
    assert judge(fc.granted_and_released, s)[0] == ERROR


def test_granted_and_released_without_an_observation_is_inconclusive() -> None:
    s = session(connect_error="TLS handshake failed", unreachable=False)
    assert judge(fc.granted_and_released, s)[0] == INCONCLUSIVE


def secure_answer() -> fl.FloorAnswer:
    return fl.FloorAnswer(
        "127.0.0.1",
        4000,
        fl.SECURE,
        {
            "confid": "1",
            "userid": "2",
            "floorid": "1",
            "setup": "passive",
            "floorctrl": "s-only",
            "fingerprint": f"SHA-256 {FP}",
        },
    )


def test_fingerprint_on_a_server_reached_but_not_handshaken_is_inconclusive() -> None:
    s = session(answer=secure_answer(), connect_error="TLS handshake failed", unreachable=False)
    assert judge(fc.fingerprint_matches, s)[0] == INCONCLUSIVE


def test_fingerprint_on_an_unreachable_server_is_an_error() -> None:
    s = session(answer=secure_answer(), connect_error="connection refused", unreachable=True)
    assert judge(fc.fingerprint_matches, s)[0] == ERROR


def failed_connect(cause: BaseException) -> TransportError:
    """A `TransportError` as `BfcpClient.connect` raises it (`from None`: cause in context)."""
    try:
        try:
            raise cause
        except BaseException:
            raise TransportError("cannot open BFCP connection") from None
    except TransportError as exc:
        return exc


def test_refused_and_timed_out_connections_are_unreachable_tls_failures_are_not() -> None:
    assert fl.unreachable(failed_connect(ConnectionRefusedError(111, "refused")))
    assert fl.unreachable(failed_connect(TimeoutError()))
    assert not fl.unreachable(failed_connect(ssl.SSLCertVerificationError("bad certificate")))
    assert not fl.unreachable(failed_connect(ConnectionResetError(104, "reset")))


# -- every check returns its evidence -------------------------------------------------------------


def test_granted_and_released_passes_on_evidence() -> None:
    assert passes_on_evidence(fc.granted_and_released, cycled())


def test_a_closed_floor_request_fails_granted_and_released() -> None:
    s = cycled(FloorRequest=None, FloorRelease="unsent")
    verdict, why = judge(fc.granted_and_released, s)
    assert verdict == FAIL and "closed" in why


def test_answer_checks_pass_on_evidence() -> None:
    assert passes_on_evidence(fc.answer_secure, session(answer=secure_answer()))
    carol = session("carol", answer=secure_answer())
    assert passes_on_evidence(fc.plain_refused, plain_offer_refused(), [carol])


# -- a plain TCP/BFCP offer, refused; the control is a TCP/TLS/BFCP offer accepted ---------------


def plain_offer_refused() -> fl.FloorSession:
    return session(outcome=CallOutcome("bob", "sips:conf@example.com", 488, "Not Acceptable"))


def test_a_plain_refusal_without_a_secure_control_is_inconclusive() -> None:
    """A focus that answers 488 to every offer with BFCP would pass unearned."""
    verdict, why = judge(fc.plain_refused, plain_offer_refused())
    assert verdict == INCONCLUSIVE and "control" in why
    declined = session("carol", answer=secure_answer())
    declined.answer.port = 0  # type: ignore[union-attr]
    verdict, why = judge(fc.plain_refused, plain_offer_refused(), [declined])
    assert verdict == INCONCLUSIVE and "control" in why


def test_a_plain_refusal_beside_an_accepted_secure_offer_passes_on_evidence() -> None:
    carol = session("carol", answer=secure_answer())
    verdict, why = judge(fc.plain_refused, plain_offer_refused(), [carol])
    assert verdict == PASS and "carol's TCP/TLS/BFCP offer" in why


def test_plain_bfcp_accepted_fails_whatever_the_control() -> None:
    plain = fl.FloorAnswer("127.0.0.1", 4001, fl.PLAIN, {"confid": "1", "userid": "2"})
    verdict, why = judge(fc.plain_refused, session(answer=plain))
    assert verdict == FAIL and "in the clear" in why


# -- the first message on a fresh connection (floor_binding.FirstMessages) -----------------------

OWN_FP, OTHER_FP = FP, "EF:01:" + ":".join(["00"] * 30)


def first(
    primitive: str = "Hello",
    claimed: str = "bob",
    *,
    sender: str = "bob",
    answer: Received | None = HELLO_ACK,
    started: float = 10.0,
    **observed: object,
) -> fb.FirstMessage:
    """A first message that reached the server on a TLS connection from the certificate its
    sender's offer named, answered with `answer` (None: the server closed the connection)."""
    f = fb.FirstMessage(sender, primitive, claimed, OWN_FP, OWN_FP, started=started)
    f.connected = f.tls = True
    f.result, f.answer = ("closed" if answer is None else "answered"), answer
    for key, value in observed.items():
        setattr(f, key, value)
    return f


def foreign(primitive: str = "Hello", **observed: object) -> fb.FirstMessage:
    return first(primitive, "carol", started=20.0, **{"answer": AN_ERROR, **observed})


def test_a_foreign_first_message_refused_beside_the_own_one_passes_on_evidence() -> None:
    for probe in (foreign(), foreign(answer=None)):
        verdict, why = judge(fc.first_foreign_refused, first(), probe)
        assert verdict == PASS and "bob's own first Hello" in why
    control = first("FloorRequest", answer=GRANTED, released=True)
    assert passes_on_evidence(fc.first_foreign_refused, control, foreign("FloorRequest"))


def test_a_foreign_first_message_answered_or_granted_fails_whatever_the_control() -> None:
    for control in (None, first()):
        verdict, why = judge(fc.first_foreign_refused, control, foreign(answer=HELLO_ACK))
        assert verdict == FAIL and "carol's user id" in why and "HelloAck" in why
    granted_anyway = foreign("FloorRequest", grants=1)  # an Error, and the floor all the same
    verdict, why = judge(fc.first_foreign_refused, first(), granted_anyway)
    assert verdict == FAIL and "granted" in why


def test_a_refused_first_message_needs_a_served_own_one_sent_before_it() -> None:
    for control in (
        None,
        first(answer=AN_ERROR),
        first(answer=None),
        first("FloorRequest", answer=PENDING),
        first("FloorRequest", answer=GRANTED, released=False),
        first(started=30.0),  # after the probe
        first(presented=OTHER_FP),  # not on the certificate its offer named
    ):
        verdict, why = judge(fc.first_foreign_refused, control, foreign())
        assert verdict == INCONCLUSIVE, (control, why)


def test_silence_to_a_foreign_first_message_cannot_be_judged() -> None:
    verdict, why = judge(fc.first_foreign_refused, first(), foreign(result="silent", answer=None))
    assert verdict == INCONCLUSIVE and "deadline" in why


def test_a_first_message_that_could_not_be_sent_is_not_evidence() -> None:
    unsent = fb.FirstMessage("bob", "Hello", "carol", OWN_FP, OWN_FP, started=20.0)
    unsent.connect_error, unsent.unreachable = "connection refused", True
    assert judge(fc.first_foreign_refused, first(), unsent)[0] == ERROR
    unsent.unreachable = False
    assert judge(fc.first_foreign_refused, first(), unsent)[0] == INCONCLUSIVE


def mismatched(**observed: object) -> fb.FirstMessage:
    """bob's first FloorRequest under his own user id, from a certificate his offer did not
    name (the offer named OTHER_FP)."""
    probe = first("FloorRequest", started=20.0, answer=AN_ERROR, offered=OTHER_FP)
    for key, value in observed.items():
        setattr(probe, key, value)
    return probe


def carols() -> fb.FirstMessage:
    return first("FloorRequest", sender="carol", claimed="carol", answer=GRANTED, released=True)


def test_a_certificate_the_offer_did_not_name_refused_beside_a_matching_one_passes() -> None:
    for probe in (mismatched(), mismatched(answer=None, result="closed")):
        verdict, why = judge(fc.mismatched_certificate_refused, carols(), probe)
        assert verdict == PASS and "carol's own first FloorRequest" in why
    at_handshake = mismatched(connected=False, tls=False, result="unsent", answer=None)
    at_handshake.connect_error = "TLS handshake failed"
    ev = fc.mismatched_certificate_refused(carols(), at_handshake)
    assert ev.counts["refused at the TLS handshake"] == 1


def test_a_certificate_the_offer_did_not_name_served_fails() -> None:
    for control in (None, carols()):
        verdict, why = judge(fc.mismatched_certificate_refused, control, mismatched(answer=GRANTED))
        assert verdict == FAIL and "did not name" in why


def test_a_mismatch_needs_a_mismatch_and_a_matching_control() -> None:
    verdict, why = judge(fc.mismatched_certificate_refused, carols(), mismatched(offered=OWN_FP))
    assert verdict == INCONCLUSIVE and "no mismatch" in why
    refused_control = first("FloorRequest", sender="carol", claimed="carol", answer=AN_ERROR)
    verdict, why = judge(fc.mismatched_certificate_refused, refused_control, mismatched())
    assert verdict == INCONCLUSIVE and "control" in why
    unreachable = mismatched(connected=False, unreachable=True, result="unsent", answer=None)
    assert judge(fc.mismatched_certificate_refused, carols(), unreachable)[0] == ERROR
