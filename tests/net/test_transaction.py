"""RFC 3261 §17 transaction machines driven with a fake clock (no sleeping, no sockets)."""

from __future__ import annotations

import pytest

from confsec.codec.sip import Headers, Request, Response, make_response, parse_message
from confsec.errors import LocalProtocolError
from confsec.net._txn_fsm import (
    AckReceived,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    Terminated,
    TimedOut,
    Timers,
    Transmit,
    build_ack,
)
from confsec.net._txn_keys import client_key, server_key

BRANCH = "z9hG4bKtest1"
TIMERS = Timers()  # RFC defaults: T1=0.5, T2=4, T4=5


def request(method: str = "OPTIONS", branch: str = BRANCH, cseq: int = 1) -> Request:
    return Request(
        method,
        "sip:bob@example.test",
        Headers(
            [
                ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"),
                ("Max-Forwards", "70"),
                ("From", "<sip:alice@example.test>;tag=a1"),
                ("To", "<sip:bob@example.test>"),
                ("Call-ID", "call-1@example.test"),
                ("CSeq", f"{cseq} {method}"),
                ("Route", "<sip:proxy.example.test;lr>"),
            ]
        ),
    )


def response(req: Request, status: int, tag: str | None = "b1") -> Response:
    return make_response(req, status, to_tag=tag if status > 100 else None)


def drain(machine: ClientTransaction | ServerTransaction) -> list[Event]:
    events: list[Event] = []
    while (event := machine.next_event()) is not None:
        events.append(event)
    return events


def run_until(
    machine: ClientTransaction | ServerTransaction, end: float
) -> list[tuple[float, Event]]:
    """Advance the fake clock timer by timer up to `end`; returns (time, event) pairs."""
    out: list[tuple[float, Event]] = []
    while (at := machine.next_timer()) is not None and at <= end:
        machine.handle_timer(at)
        out.extend((at, event) for event in drain(machine))
    return out


def transmit_times(timeline: list[tuple[float, Event]]) -> list[float]:
    return [round(at, 6) for at, event in timeline if isinstance(event, Transmit)]


# ------------------------------------------------------------------------------------- client


def test_non_invite_udp_retransmits_on_timer_e_and_times_out_on_f() -> None:
    txn = ClientTransaction(request(), reliable=False, timers=TIMERS)
    txn.start(0.0)
    first = drain(txn)
    assert [type(e) for e in first] == [Transmit]
    timeline = run_until(txn, 100.0)
    # Timer E: T1, then doubling up to T2 = 4 s (0.5, 1, 2, 4, 4, ...) until Timer F at 64*T1.
    assert transmit_times(timeline) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(e.retransmission for _, e in timeline if isinstance(e, Transmit))
    tail = [(at, e) for at, e in timeline if not isinstance(e, Transmit)]
    assert tail == [(32.0, TimedOut("F")), (32.0, Terminated("timeout"))]
    assert txn.state is State.TERMINATED
    assert txn.next_timer() is None


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    req = request()
    txn = ClientTransaction(req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    txn.receive_response(response(req, 100), 0.1)
    assert drain(txn) == [ResponseReceived(response(req, 100))]
    assert txn.state is State.PROCEEDING
    timeline = run_until(txn, 12.0)
    # Already-armed E at 0.5, then T2 each time while Proceeding.
    assert transmit_times(timeline) == [0.5, 4.5, 8.5]


def test_invite_udp_timer_a_doubles_without_cap_then_timer_b() -> None:
    txn = ClientTransaction(request("INVITE"), reliable=False, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    timeline = run_until(txn, 100.0)
    assert transmit_times(timeline) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert timeline[-2:] == [(32.0, TimedOut("B")), (32.0, Terminated("timeout"))]


def test_small_t1_times_out_quickly() -> None:
    txn = ClientTransaction(request(), reliable=False, timers=Timers(t1=0.01))
    txn.start(0.0)
    drain(txn)
    timeline = run_until(txn, 10.0)
    assert [e for _, e in timeline if isinstance(e, TimedOut)] == [TimedOut("F")]
    assert timeline[-1][0] == pytest.approx(0.64)


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_reliable_transport_never_retransmits(method: str) -> None:
    txn = ClientTransaction(request(method), reliable=True, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    assert txn.next_timer() == 32.0  # only Timer B/F
    timeline = run_until(txn, 100.0)
    assert transmit_times(timeline) == []
    assert isinstance(timeline[0][1], TimedOut)


def test_invite_provisional_stops_timer_a() -> None:
    req = request("INVITE")
    txn = ClientTransaction(req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    txn.receive_response(response(req, 180), 0.2)
    assert [type(e) for e in drain(txn)] == [ResponseReceived]
    assert txn.state is State.PROCEEDING
    assert txn.next_timer() is None  # no A, no B in Proceeding (the TU guards the wait)


def test_invite_4xx_generates_ack_with_same_branch_and_absorbs_retransmits() -> None:
    req = request("INVITE")
    txn = ClientTransaction(req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    busy = response(req, 486)
    txn.receive_response(busy, 0.3)
    events = drain(txn)
    assert events[0] == ResponseReceived(busy)
    assert isinstance(events[1], Transmit)
    ack = events[1].message
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == req.uri
    assert ack.branch == BRANCH
    assert ack.cseq == (1, "ACK")
    assert ack.to.tag == "b1"
    assert ack.from_.tag == "a1"
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.test;lr>"]
    assert len(ack.via) == 1
    parse_message(ack.to_bytes())  # well formed on the wire
    assert txn.state is State.COMPLETED
    # A retransmitted 486 is not passed up again; the same ACK goes out again.
    txn.receive_response(busy, 1.0)
    again = drain(txn)
    assert again == [Transmit(ack, retransmission=True)]
    # Timer D (32 s on UDP) ends it.
    assert txn.next_timer() == pytest.approx(32.3)
    assert run_until(txn, 40.0)[-1][1] == Terminated("timer D")


def test_invite_4xx_on_reliable_transport_terminates_at_once() -> None:
    req = request("INVITE")
    txn = ClientTransaction(req, reliable=True, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    txn.receive_response(response(req, 403), 0.1)
    kinds = [type(e) for e in drain(txn)]
    assert kinds == [ResponseReceived, Transmit, Terminated]  # Timer D = 0


def test_invite_2xx_accepted_passes_retransmissions_to_tu() -> None:
    req = request("INVITE")
    txn = ClientTransaction(req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    ok = response(req, 200)
    txn.receive_response(ok, 0.1)
    assert drain(txn) == [ResponseReceived(ok)]  # no ACK: that is the dialog's job
    assert txn.state is State.ACCEPTED
    txn.receive_response(ok, 0.6)
    assert drain(txn) == [ResponseReceived(ok, retransmission=True)]
    assert run_until(txn, 40.0)[-1] == (pytest.approx(32.1), Terminated("timer M"))


def test_non_invite_final_then_timer_k() -> None:
    req = request()
    txn = ClientTransaction(req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    ok = response(req, 200)
    txn.receive_response(ok, 0.2)
    assert drain(txn) == [ResponseReceived(ok)]
    txn.receive_response(ok, 0.3)
    assert drain(txn) == []  # absorbed in Completed
    assert txn.next_timer() == pytest.approx(5.2)  # Timer K = T4
    assert run_until(txn, 10.0)[-1][1] == Terminated("timer K")


def test_transport_error_terminates() -> None:
    txn = ClientTransaction(request(), reliable=True, timers=TIMERS)
    txn.start(0.0)
    drain(txn)
    txn.transport_error("reset")
    events = drain(txn)
    assert [type(e).__name__ for e in events] == ["TransportFailed", "Terminated"]


def test_ack_is_not_a_client_transaction() -> None:
    with pytest.raises(LocalProtocolError):
        ClientTransaction(request("ACK"), reliable=True)


# ------------------------------------------------------------------------------------- server


def test_non_invite_server_absorbs_retransmissions_and_resends_final() -> None:
    req = request()
    txn = ServerTransaction(req, 0.0, reliable=False, timers=TIMERS)
    assert drain(txn) == [RequestReceived(req)]
    txn.receive_request(req, 0.5)  # retransmission while Trying: dropped, not passed up
    assert drain(txn) == []
    ok = response(req, 200)
    txn.send_response(ok, 0.6)
    assert drain(txn) == [Transmit(ok)]
    txn.receive_request(req, 1.0)
    assert drain(txn) == [Transmit(ok, retransmission=True)]
    assert txn.next_timer() == pytest.approx(32.6)  # Timer J = 64*T1
    assert run_until(txn, 40.0)[-1][1] == Terminated("timer J")
    with pytest.raises(LocalProtocolError):
        txn.send_response(ok, 41.0)


def test_non_invite_server_reliable_terminates_after_final() -> None:
    req = request()
    txn = ServerTransaction(req, 0.0, reliable=True, timers=TIMERS)
    drain(txn)
    txn.send_response(response(req, 200), 0.1)
    assert [type(e) for e in drain(txn)] == [Transmit, Terminated]


def test_invite_server_sends_100_trying_when_tu_is_slow() -> None:
    req = request("INVITE")
    txn = ServerTransaction(req, 0.0, reliable=False, timers=TIMERS)
    drain(txn)
    timeline = run_until(txn, 1.0)
    assert len(timeline) == 1
    at, event = timeline[0]
    assert at == pytest.approx(0.2)
    assert isinstance(event, Transmit) and isinstance(event.message, Response)
    assert event.message.status == 100
    # A retransmitted INVITE gets the 100 again.
    txn.receive_request(req, 0.7)
    assert drain(txn) == [Transmit(event.message, retransmission=True)]


def test_invite_server_non_2xx_timer_g_until_ack_then_timer_i() -> None:
    req = request("INVITE")
    txn = ServerTransaction(req, 0.0, reliable=False, timers=TIMERS)
    drain(txn)
    busy = response(req, 486)
    txn.send_response(busy, 0.0)
    assert drain(txn) == [Transmit(busy)]
    timeline = run_until(txn, 4.0)
    assert transmit_times(timeline) == [0.5, 1.5, 3.5]  # Timer G: T1 doubling (cap T2)
    txn.receive_request(req, 3.6)  # retransmitted INVITE -> the 486 again
    assert drain(txn) == [Transmit(busy, retransmission=True)]
    ack = build_ack(req, busy)
    assert server_key(ack) == server_key(req)  # ACK matches the INVITE transaction
    txn.receive_request(ack, 3.7)
    assert drain(txn) == [AckReceived(ack)]
    assert txn.state is State.CONFIRMED
    txn.receive_request(ack, 3.8)
    assert drain(txn) == []  # absorbed
    assert txn.next_timer() == pytest.approx(8.7)  # Timer I = T4
    assert run_until(txn, 20.0)[-1][1] == Terminated("timer I")


def test_invite_server_timer_h_without_ack() -> None:
    req = request("INVITE")
    txn = ServerTransaction(req, 0.0, reliable=True, timers=TIMERS)
    drain(txn)
    txn.send_response(response(req, 404), 0.0)
    drain(txn)
    timeline = run_until(txn, 100.0)
    assert transmit_times(timeline) == []  # reliable: no Timer G
    assert [e for _, e in timeline] == [TimedOut("H"), Terminated("timeout")]
    assert timeline[0][0] == pytest.approx(32.0)


def test_invite_server_2xx_retransmitted_until_ack() -> None:
    req = request("INVITE")
    txn = ServerTransaction(req, 0.0, reliable=False, timers=TIMERS)
    drain(txn)
    ok = response(req, 200)
    txn.send_response(ok, 0.0)
    assert drain(txn) == [Transmit(ok)]
    assert txn.state is State.ACCEPTED
    assert transmit_times(run_until(txn, 2.0)) == [0.5, 1.5]
    txn.ack_2xx_received(None)
    assert drain(txn) == [AckReceived(None)]
    assert transmit_times(run_until(txn, 31.0)) == []
    assert run_until(txn, 40.0)[-1][1] == Terminated("timer L")


def test_invite_server_2xx_without_ack_reports_timer_l() -> None:
    req = request("INVITE")
    txn = ServerTransaction(req, 0.0, reliable=True, timers=TIMERS)
    drain(txn)
    txn.send_response(response(req, 200), 0.0)
    drain(txn)
    assert [e for _, e in run_until(txn, 100.0)] == [TimedOut("L"), Terminated("timer L")]


def test_invite_server_refuses_a_second_final() -> None:
    req = request("INVITE")
    txn = ServerTransaction(req, 0.0, reliable=False, timers=TIMERS)
    drain(txn)
    txn.send_response(response(req, 486), 0.0)
    with pytest.raises(LocalProtocolError):
        txn.send_response(response(req, 200), 0.1)


# ----------------------------------------------------------------------------------- matching


def test_matching_keys() -> None:
    invite = request("INVITE")
    cancel = Request("CANCEL", invite.uri, invite.headers.with_("CSeq", "1 CANCEL"))
    ack = build_ack(invite, response(invite, 486))
    assert client_key(invite) == client_key(response(invite, 180)) == (BRANCH, "INVITE")
    assert client_key(cancel) != client_key(invite)
    assert server_key(ack) == server_key(invite)
    assert server_key(cancel) != server_key(invite)
    other = request("INVITE", branch="z9hG4bKother")
    assert server_key(other) != server_key(invite)


def test_rfc2543_request_without_magic_cookie_still_matches_retransmission() -> None:
    old = request("OPTIONS", branch="1234")
    assert server_key(old) == server_key(request("OPTIONS", branch="1234"))
    assert server_key(old)[0] == "rfc2543"
