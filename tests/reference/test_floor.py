"""The reference's floor control server (confsec/reference/floor.py) over real BFCP/TLS.

The R8 scenarios pin the security properties; here the server's answers are pinned one by one
with the suite's own client (`confsec.net.bfcp`): the Error codes of RFC 8855 13 for each kind
of refusal, the binding of a connection to one user and one certificate (from the very first
message on a fresh connection, and under the two defects that get it wrong), queueing and
release, and that a malformed message leaves the connection usable.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour import floor_checks as fc
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.floor import SECURE, FloorRun, FloorSession, request_statuses
from confsec.behaviour.floor_binding import FirstMessage, FirstMessages
from confsec.behaviour.participant import OfferSpec
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp, ErrorCode, Primitive, RequestStatus
from confsec.errors import NonConformance, TargetUnreachable
from confsec.net.bfcp import Received
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread


@pytest.fixture
def floor(conf: ConferenceRun) -> Iterator[FloorRun]:
    assert conf.create("alice", OfferSpec()).status == 200
    run = FloorRun(conf)
    yield run
    run.close()


def _joined(floor: FloorRun, name: str) -> FloorSession:
    s = floor.join(name, SECURE)
    assert s.answer is not None and s.answer.port != 0
    floor.connect(name)
    assert s.client is not None, s.connect_error
    return s


def _send(floor: FloorRun, s: FloorSession, msg: Bfcp | bytes) -> Received | None:
    assert s.client is not None
    return floor.conf.runtime.run(s.client.transact(msg, 5), 10)


def _msg(s: FloorSession, primitive: int, *attrs, **kw) -> Bfcp:  # type: ignore[no-untyped-def]
    assert s.answer is not None
    fields = {
        "conference_id": s.answer.conference_id,
        "user_id": s.answer.user_id,
        "transaction_id": s.next_txn(),
        **kw,
    }
    return Bfcp(primitive=primitive, attributes=list(attrs), **fields)


def _answer_to_hello(floor: FloorRun, s: FloorSession) -> int | None:
    got = _send(floor, s, _msg(s, Primitive.HELLO))
    return got.message.primitive if got is not None else None


def _error_code(got: Received | None) -> int | None:
    if got is None or got.message.primitive != Primitive.ERROR:
        return None
    return got.message.attr(b.BfcpErrorCode).error_code


def test_the_answer_follows_rfc_8856(floor: FloorRun) -> None:
    s = floor.join("bob", SECURE)
    a = s.answer
    assert a is not None and a.proto == SECURE and a.port != 0
    assert a.attributes["floorctrl"] == "s-only" and a.attributes["setup"] == "passive"
    assert a.attributes["connection"] == "new" and a.floor_id == 1
    assert a.fingerprint is not None and a.fingerprint[0] == "SHA-256"


def test_hello_then_refusals_carry_the_rfc_error_codes(floor: FloorRun) -> None:
    bob = _joined(floor, "bob")
    hello = _msg(bob, Primitive.HELLO, conference_id=999999)
    assert _error_code(_send(floor, bob, hello)) == ErrorCode.CONFERENCE_DOES_NOT_EXIST
    hello = _msg(bob, Primitive.HELLO, user_id=777)
    assert _error_code(_send(floor, bob, hello)) == ErrorCode.USER_DOES_NOT_EXIST
    answer = _send(floor, bob, _msg(bob, Primitive.HELLO))
    assert answer is not None and answer.message.primitive == Primitive.HELLO_ACK
    assert Primitive.FLOOR_REQUEST in answer.message.attr(b.BfcpSupportedPrimitives).primitives
    chair_action = _msg(bob, Primitive.CHAIR_ACTION)  # not served
    assert _error_code(_send(floor, bob, chair_action)) == ErrorCode.UNKNOWN_PRIMITIVE
    other_floor = _msg(bob, Primitive.FLOOR_REQUEST, b.BfcpFloorId(floor_id=42))
    assert _error_code(_send(floor, bob, other_floor)) == ErrorCode.INVALID_FLOOR_ID
    no_such = _msg(bob, Primitive.FLOOR_RELEASE, b.BfcpFloorRequestId(floor_request_id=99))
    assert _error_code(_send(floor, bob, no_such)) == ErrorCode.FLOOR_REQUEST_ID_DOES_NOT_EXIST
    on_behalf = _msg(
        bob,
        Primitive.FLOOR_REQUEST,
        b.BfcpFloorId(floor_id=1),
        b.BfcpBeneficiaryId(beneficiary_id=1),
    )
    assert _error_code(_send(floor, bob, on_behalf)) == ErrorCode.UNAUTHORIZED_OPERATION


def test_a_connection_is_bound_to_its_user_and_certificate(floor: FloorRun) -> None:
    carol = floor.join("carol", SECURE)
    bob = _joined(floor, "bob")
    assert carol.answer is not None
    # bob's certificate is not the one carol's offer named: carol's user id is refused.
    carols_hello = _msg(bob, Primitive.HELLO, user_id=carol.answer.user_id)
    assert _error_code(_send(floor, bob, carols_hello)) == ErrorCode.UNAUTHORIZED_OPERATION
    assert _answer_to_hello(floor, bob) == Primitive.HELLO_ACK
    carols_query = _msg(bob, Primitive.FLOOR_QUERY, user_id=carol.answer.user_id)
    assert _error_code(_send(floor, bob, carols_query)) == ErrorCode.UNAUTHORIZED_OPERATION


def test_malformed_bfcp_gets_an_error_and_the_connection_stays_usable(floor: FloorRun) -> None:
    bob = _joined(floor, "bob")
    bad = bytearray(bytes(_msg(bob, Primitive.FLOOR_REQUEST, b.BfcpFloorId(floor_id=1, length=9))))
    assert _error_code(_send(floor, bob, bytes(bad))) == ErrorCode.UNABLE_TO_PARSE_MESSAGE
    wrong_version = bytearray(bytes(_msg(bob, Primitive.HELLO)))
    wrong_version[0] = (5 << 5) | (wrong_version[0] & 0x1F)
    assert _error_code(_send(floor, bob, bytes(wrong_version))) == ErrorCode.UNSUPPORTED_VERSION
    assert _answer_to_hello(floor, bob) == Primitive.HELLO_ACK


def test_requests_queue_and_the_floor_passes_on_release(floor: FloorRun) -> None:
    bob = _joined(floor, "bob")
    carol = _joined(floor, "carol")
    for s in (bob, carol):
        assert _answer_to_hello(floor, s) == Primitive.HELLO_ACK
    watch = _send(floor, carol, _msg(carol, Primitive.FLOOR_QUERY, b.BfcpFloorId(floor_id=1)))
    assert watch is not None and watch.message.primitive == Primitive.FLOOR_STATUS
    granted = _send(floor, bob, _msg(bob, Primitive.FLOOR_REQUEST, b.BfcpFloorId(floor_id=1)))
    pending = _send(floor, carol, _msg(carol, Primitive.FLOOR_REQUEST, b.BfcpFloorId(floor_id=1)))
    status = lambda r: r.message.attr(b.BfcpFloorRequestInformation).attributes[0].attributes[0]  # noqa: E731
    assert status(granted).request_status == RequestStatus.GRANTED
    assert status(pending).request_status == RequestStatus.PENDING
    rid = granted.message.attr(b.BfcpFloorRequestInformation).floor_request_id  # type: ignore[union-attr]
    since = len(carol.client.received)  # type: ignore[union-attr]
    release = _msg(bob, Primitive.FLOOR_RELEASE, b.BfcpFloorRequestId(floor_request_id=rid))
    released = _send(floor, bob, release)
    assert status(released).request_status == RequestStatus.RELEASED
    got = floor.conf.runtime.run(
        carol.client.wait_for(  # type: ignore[union-attr]
            lambda m: m.primitive == Primitive.FLOOR_REQUEST_STATUS and m.transaction_id == 0,
            5,
            since,
        ),
        10,
    )
    assert got is not None and status(got).request_status == RequestStatus.GRANTED


def test_fuzzed_bfcp_gets_an_error_each_on_one_connection(floor: FloorRun) -> None:
    _joined(floor, "bob")
    probes = floor.send_malformed("bob", 40, seed=1)
    assert [p.result for p in probes] == ["error"] * 40
    again = _joined(floor, "carol")
    assert _answer_to_hello(floor, again) == Primitive.HELLO_ACK


def test_bob_own_grant_is_the_control_for_refusing_carols_user_id(floor: FloorRun) -> None:
    floor.join("carol", SECURE)
    _joined(floor, "bob")
    floor.request_and_release("bob")
    got = floor.request_floor("bob", as_user="carol")
    seen = fc.foreign_request_refused(got, "bob", "carol", floor.session("bob"))
    assert seen.counts["refused with an Error"] == 1 and len(seen.controls) == 1


def test_the_malformed_batch_follows_a_served_hello_and_carol_is_served_after(
    floor: FloorRun,
) -> None:
    _joined(floor, "bob")
    carol = floor.join("carol", SECURE)
    probes = floor.send_malformed("bob", 5)
    assert floor.fuzz_baseline == "HelloAck" and [p.result for p in probes] == ["error"] * 5
    floor.request_and_release("carol")
    assert fc.malformed_handled(probes, floor.fuzz_baseline).counts["Errors"] == 5
    assert fc.still_serving(carol, floor.fuzz_baseline, floor.fuzz_ended)


def test_a_floor_server_that_refuses_the_connection_is_unreachable(floor: FloorRun) -> None:
    s = floor.join("bob", SECURE)
    assert s.answer is not None
    with socket.socket() as closed:  # a port nothing listens on any more
        closed.bind(("127.0.0.1", 0))
        s.answer.port = closed.getsockname()[1]
    floor.request_and_release("bob")
    assert s.unreachable and s.cycle is not None and not s.cycle.connected
    with pytest.raises(TargetUnreachable):
        fc.granted_and_released(s)


# -- the binding from the very first message on a fresh connection -------------------------------


@contextlib.contextmanager
def _floor_with(defect: str, tmp_path: Path) -> Iterator[FloorRun]:
    """A floor run against a reference of its own with `defect` switched on."""
    ref = EmbeddedReference.start(tmp_path / "ref", defects=frozenset({defect}))
    loop = LoopThread("test-floor-defect")
    conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
    run = FloorRun(conf)
    try:
        assert conf.create("alice", OfferSpec()).status == 200
        yield run
    finally:
        run.close()
        conf.close()
        loop.close()
        ref.stop()


def _first_messages(floor: FloorRun, message: str) -> tuple[FirstMessage, FirstMessage]:
    """bob's own first `message` on a fresh connection, then one with carol's user id."""
    for name in ("carol", "bob"):
        assert floor.join(name, SECURE).answer is not None
    firsts = FirstMessages(floor)
    return firsts.send("bob", message), firsts.send("bob", message, as_user="carol")


def _mismatch(floor: FloorRun) -> tuple[FirstMessage, FirstMessage]:
    """carol's first FloorRequest from the certificate her offer named, then bob's from his own
    certificate while his offer named alice's."""
    assert floor.join("carol", SECURE).answer is not None
    bob = floor.join("bob", SECURE, cert_of="alice")
    assert bob.answer is not None and bob.offered_fingerprint is not None
    firsts = FirstMessages(floor)
    return firsts.send("carol", "FloorRequest"), firsts.send("bob", "FloorRequest")


@pytest.mark.parametrize("message", ["Hello", "FloorRequest"])
def test_a_first_message_for_another_user_id_is_refused(floor: FloorRun, message: str) -> None:
    own, foreign = _first_messages(floor, message)
    assert own.connected and own.tls and own.offered == own.presented
    if message == "FloorRequest":
        assert RequestStatus.GRANTED in request_statuses(own.answer) and own.released
    else:
        assert own.answer is not None and own.answer.message.primitive == Primitive.HELLO_ACK
    assert _error_code(foreign.answer) == ErrorCode.UNAUTHORIZED_OPERATION
    assert foreign.grants == 0
    seen = fc.first_foreign_refused(own, foreign)
    assert seen.counts["refused with an Error"] == 1 and len(seen.controls) == 1


def test_a_certificate_the_offer_did_not_name_is_refused(floor: FloorRun) -> None:
    control, probe = _mismatch(floor)
    assert control.offered == control.presented and control.released
    assert probe.connected and probe.offered != probe.presented
    assert _error_code(probe.answer) == ErrorCode.UNAUTHORIZED_OPERATION and probe.grants == 0
    seen = fc.mismatched_certificate_refused(control, probe)
    assert seen.counts["refused with an Error"] == 1 and len(seen.controls) == 1


@pytest.mark.parametrize("message", ["Hello", "FloorRequest"])
def test_binding_to_the_first_claim_lets_bob_speak_for_carol(tmp_path: Path, message: str) -> None:
    with _floor_with("bfcp-binds-on-hello", tmp_path) as floor:
        own, foreign = _first_messages(floor, message)
        assert foreign.answer is not None and foreign.answer.message.primitive != Primitive.ERROR
        with pytest.raises(NonConformance):
            fc.first_foreign_refused(own, foreign)
        # A certificate no offer named is still refused: the defect is the binding, not this.
        assert fc.mismatched_certificate_refused(*_mismatch(floor))


def test_no_fingerprint_check_takes_any_certificate_of_the_user(tmp_path: Path) -> None:
    with _floor_with("bfcp-no-client-fingerprint-check", tmp_path) as floor:
        control, probe = _mismatch(floor)
        assert probe.grants == 1
        with pytest.raises(NonConformance):
            fc.mismatched_certificate_refused(control, probe)
        # The name in bob's certificate still keeps him from carol's user id.
        carol = floor.join("carol", SECURE)
        assert carol.answer is not None
        foreign = FirstMessages(floor).send("bob", "Hello", as_user="carol")
        assert _error_code(foreign.answer) == ErrorCode.UNAUTHORIZED_OPERATION
