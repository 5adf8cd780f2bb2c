"""RFC 3261 §12 dialog state on parsed messages alone (no socket, no event loop)."""

from __future__ import annotations

import pytest

from confsec.codec.sip import Headers, Request, Response, make_response
from confsec.errors import LocalProtocolError
from confsec.net._dialog_fsm import (
    AckAwaited,
    AckDue,
    DialogState,
    Ended,
    Refusal,
    id_of_request,
    id_of_response,
    is_secure,
)

CALL_ID = "call-1@example.test"
ALICE = "sips:alice@example.test"
FOCUS = "sips:conf@example.test"
RECORD_ROUTE = ["<sips:p1.example.test;lr>", "<sips:p2.example.test;lr>"]
OFFER = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\n"
ANSWER = b"v=0\r\no=focus 1 1 IN IP4 192.0.2.9\r\n"


def request(
    method: str,
    cseq: int,
    *,
    to_tag: str | None = None,
    contact: str | None = "<sips:alice@192.0.2.1:5061>",
    body: bytes = b"",
    record_route: list[str] | None = None,
) -> Request:
    """A request from alice (tag a1) to the focus, in a dialog when `to_tag` is given."""
    headers = [
        ("Via", "SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKx"),
        ("From", f'"Alice" <{ALICE}>;tag=a1'),
        ("To", f"<{FOCUS}>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", CALL_ID),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact:
        headers.append(("Contact", contact))
    headers += [("Record-Route", rr) for rr in record_route or []]
    return Request(method, FOCUS, Headers(headers), body)


def answer(
    req: Request,
    status: int = 200,
    *,
    contact: str | None = "<sips:conf@192.0.2.9:5061>",
    body: bytes = b"",
    record_route: list[str] | None = None,
) -> Response:
    """The focus's answer (To tag f1), with its Contact and the Record-Route it saw."""
    headers = [("Contact", contact)] if contact else []
    headers += [("Record-Route", rr) for rr in record_route or []]
    return make_response(req, status, to_tag="f1", headers=headers, body=body)


def caller(**kwargs: object) -> tuple[DialogState, Request]:
    invite = request("INVITE", 1, body=OFFER)
    ok = answer(invite, body=ANSWER, **kwargs)  # type: ignore[arg-type]
    return DialogState.uac(invite, ok, secure=True, local_display="Alice"), invite


def callee(**kwargs: object) -> tuple[DialogState, Request]:
    invite = request("INVITE", 7, body=OFFER, **kwargs)  # type: ignore[arg-type]
    return DialogState.uas(invite, local_tag="f1", local_seq=100, secure=True), invite


# ------------------------------------------------------------------------------------ identity


def test_uac_dialog_id_and_sequence_from_invite_and_2xx() -> None:
    state, _ = caller()
    assert state.role == "uac"
    assert state.id == (CALL_ID, "a1", "f1")
    assert (state.local_uri, state.remote_uri) == (ALICE, FOCUS)
    assert state.local_seq == 1 and state.remote_seq is None
    assert state.remote_target == "sips:conf@192.0.2.9:5061"
    assert state.remote_sdp == ANSWER
    assert not state.terminated


def test_uas_dialog_id_is_the_mirror_of_the_uac_one() -> None:
    state, _ = callee()
    assert state.role == "uas"
    assert state.id == (CALL_ID, "f1", "a1")
    assert (state.local_uri, state.remote_uri) == (FOCUS, ALICE)
    assert state.local_seq == 100 and state.remote_seq == 7
    assert state.remote_target == "sips:alice@192.0.2.1:5061"


def test_requests_and_responses_find_their_dialog_by_its_id_on_each_side() -> None:
    uac, invite = caller()
    uas, _ = callee()
    assert id_of_response(answer(invite)) == uac.id
    assert id_of_request(request("BYE", 9, to_tag="f1")) == uas.id
    assert id_of_request(request("INVITE", 1)) == (CALL_ID, "", "a1")  # no dialog yet


def test_without_contact_the_target_is_the_request_uri_or_the_from_uri() -> None:
    invite = request("INVITE", 1, contact=None)
    uac = DialogState.uac(invite, answer(invite, contact=None), secure=False)
    uas = DialogState.uas(invite, local_tag="f1", local_seq=1, secure=False)
    assert uac.remote_target == FOCUS
    assert uas.remote_target == ALICE


def test_secure_only_for_a_sips_request_uri_over_tls() -> None:
    sips = request("INVITE", 1)
    sip = Request("INVITE", "sip:conf@example.test", sips.headers)
    assert is_secure(sips, over_tls=True)
    assert not is_secure(sips, over_tls=False)
    assert not is_secure(sip, over_tls=True)


def test_request_headers_carry_tags_next_cseq_and_routes() -> None:
    state, _ = caller(record_route=RECORD_ROUTE)
    seq = state.next_seq()
    assert seq == 2 and state.local_seq == 2
    assert state.request_headers("BYE", seq) == [
        ("From", f'"Alice" <{ALICE}>;tag=a1'),
        ("To", f"<{FOCUS}>;tag=f1"),
        ("Call-ID", CALL_ID),
        ("CSeq", "2 BYE"),
        ("Route", RECORD_ROUTE[1]),
        ("Route", RECORD_ROUTE[0]),
    ]


# ----------------------------------------------------------------------------------- route set


def test_route_set_is_reversed_for_the_uac_and_kept_for_the_uas() -> None:
    uac, _ = caller(record_route=RECORD_ROUTE)
    uas, _ = callee(record_route=RECORD_ROUTE)
    assert uac.route_set == tuple(reversed(RECORD_ROUTE))
    assert uas.route_set == tuple(RECORD_ROUTE)


# --------------------------------------------------------------------------- remote CSeq order


def test_in_dialog_requests_must_raise_the_remote_cseq() -> None:
    state, _ = callee()
    assert state.admit(request("INFO", 8, to_tag="f1")) is None
    assert state.remote_seq == 8
    assert state.admit(request("INFO", 8, to_tag="f1")) == Refusal(500, "CSeq Out of Order")
    assert state.admit(request("INFO", 3, to_tag="f1")) == Refusal(500, "CSeq Out of Order")
    assert state.remote_seq == 8  # a refused request does not move it
    assert state.admit(request("INFO", 20, to_tag="f1")) is None
    assert state.remote_seq == 20


def test_the_first_request_of_the_callee_sets_the_uac_remote_cseq() -> None:
    state, _ = caller()
    assert state.admit(request("NOTIFY", 5000, to_tag="f1")) is None
    assert state.remote_seq == 5000


# ------------------------------------------------------------------------------ target refresh


def test_2xx_to_reinvite_and_update_refresh_the_target_other_methods_do_not() -> None:
    state, _ = caller()
    info = request("INFO", state.next_seq(), to_tag="f1")
    state.response_received("INFO", answer(info, contact="<sips:other@192.0.2.50>"))
    assert state.remote_target == "sips:conf@192.0.2.9:5061"
    reinvite = request("INVITE", state.next_seq(), to_tag="f1")
    state.response_received("INVITE", answer(reinvite, contact="<sips:conf@192.0.2.10:5061>"))
    assert state.remote_target == "sips:conf@192.0.2.10:5061"
    update = request("UPDATE", state.next_seq(), to_tag="f1")
    state.response_received("UPDATE", answer(update, contact="<sips:conf@192.0.2.11:5061>"))
    assert state.remote_target == "sips:conf@192.0.2.11:5061"
    failed = request("UPDATE", state.next_seq(), to_tag="f1")
    state.response_received("UPDATE", answer(failed, 488, contact="<sips:no@192.0.2.12>"))
    assert state.remote_target == "sips:conf@192.0.2.11:5061"


def test_peer_reinvite_and_update_we_accept_refresh_the_target() -> None:
    state, _ = callee()
    reinvite = request("INVITE", 8, to_tag="f1", contact="<sips:alice@192.0.2.2:5061>")
    state.response_sent(reinvite, answer(reinvite))
    assert state.remote_target == "sips:alice@192.0.2.2:5061"
    update = request("UPDATE", 9, to_tag="f1", contact="<sips:alice@192.0.2.3:5061>")
    state.response_sent(update, answer(update, 491))
    assert state.remote_target == "sips:alice@192.0.2.2:5061"  # refused: no refresh
    state.response_sent(update, answer(update))
    assert state.remote_target == "sips:alice@192.0.2.3:5061"


# ---------------------------------------------------------------------------- ACK expectation


def test_2xx_to_our_reinvite_is_acked_by_us() -> None:
    state, _ = caller()
    reinvite = request("INVITE", state.next_seq(), to_tag="f1", body=OFFER)
    events = state.response_received("INVITE", answer(reinvite, body=b"v=0 new\r\n"))
    assert events == (AckDue(2),)
    assert state.remote_sdp == b"v=0 new\r\n"
    assert state.response_received("INVITE", answer(reinvite, 488)) == ()


def test_2xx_we_send_to_an_invite_awaits_its_ack() -> None:
    state, invite = callee()
    assert state.response_sent(invite, answer(invite, 180)) == ()
    assert state.awaited_ack is None
    assert state.response_sent(invite, answer(invite)) == (AckAwaited(7),)
    assert state.awaited_ack == 7
    assert state.remote_sdp == OFFER
    stray = request("ACK", 6, to_tag="f1")
    assert not state.ack_received(stray)
    ack = request("ACK", 7, to_tag="f1", body=b"v=0 late answer\r\n")
    assert state.ack_received(ack)
    assert state.remote_sdp == b"v=0 late answer\r\n"


def test_reinvite_answered_moves_the_awaited_ack_to_its_cseq() -> None:
    state, invite = callee()
    state.response_sent(invite, answer(invite))
    reinvite = request("INVITE", 8, to_tag="f1")
    assert state.admit(reinvite) is None
    assert state.response_sent(reinvite, answer(reinvite)) == (AckAwaited(8),)
    assert not state.ack_received(request("ACK", 7, to_tag="f1"))
    assert state.ack_received(request("ACK", 8, to_tag="f1"))


def test_missing_ack_timer_l_calls_for_bye_once_per_live_dialog() -> None:
    state, invite = callee()
    state.response_sent(invite, answer(invite))
    assert not state.ack_timed_out("H")
    assert state.ack_timed_out("L")
    state.terminate("no ACK")
    assert not state.ack_timed_out("L")


# ------------------------------------------------------------------------------------- the end


def test_bye_ends_the_dialog_whatever_the_answer() -> None:
    state, _ = caller()
    bye = request("BYE", state.next_seq(), to_tag="f1")
    assert state.response_received("BYE", answer(bye, 500)) == (Ended("BYE sent"),)
    assert state.termination_reason == "BYE sent"
    state.check_can_send("BYE")
    with pytest.raises(LocalProtocolError):
        state.check_can_send("INFO")


@pytest.mark.parametrize("status", [481, 408])
def test_481_and_408_say_the_dialog_is_gone(status: int) -> None:
    state, _ = caller()
    info = request("INFO", state.next_seq(), to_tag="f1")
    assert state.response_received("INFO", answer(info, status)) == (Ended(f"{status} to INFO"),)
    assert state.terminated


def test_bye_we_accept_ends_the_dialog_and_the_first_reason_stays() -> None:
    state, _ = callee()
    bye = request("BYE", 8, to_tag="f1")
    assert state.response_sent(bye, answer(bye)) == (Ended("BYE received"),)
    assert state.terminate("no ACK") is None
    assert state.termination_reason == "BYE received"


def test_the_remote_target_keeps_its_transport_when_the_flow_is_gone() -> None:
    """A bare remote target's `;transport=tls` is a URI parameter: a BYE after the connection
    closed goes over TLS, not plain UDP (seen with linphone's `sip:...;transport=tls`)."""
    from confsec.net.addressing import destination_for
    from confsec.net.dialog import Dialog
    from confsec.net.flow import Flow

    class Host:
        def is_open(self, flow: Flow) -> bool:
            return False

        def destination_for(self, uri: str) -> tuple[str, str, int]:
            return destination_for(uri)

    invite = request("INVITE", 1, body=OFFER)
    ok = answer(invite, body=ANSWER, contact="<sip:127.0.0.1:45061;transport=tls>")
    state = DialogState.uac(invite, ok, secure=False)
    dialog = Dialog(Host(), state, Flow("tls", ("127.0.0.1", 1), ("127.0.0.1", 45061)))  # type: ignore[arg-type]
    assert dialog.next_hop() == ("tls", "127.0.0.1", 45061)
