"""RFC 3261 §17 transaction state machines, sans-IO.

The four machines (client/server x INVITE/non-INVITE) are given the time instead of reading a
clock, in the style of aioquic: every input takes `now`, `next_timer()` says when the caller must
call `handle_timer(now)` next, and what the machine wants done comes out of `next_event()` as
frozen dataclasses. Nothing here touches a socket, so Timers A..K can be checked with a fake clock
and the same code runs in the suite's participants and in the reference server. Which machine a
message belongs to is computed in `_txn_keys`.

Two deliberate departures from the letter of RFC 3261, both taken from RFC 6026:

- A client INVITE transaction that receives a 2xx moves to *Accepted* (Timer M = 64*T1) instead of
  terminating, so that retransmitted 2xx still reach the TU, which must ACK each of them.
- A server INVITE transaction that sends a 2xx moves to *Accepted* (Timer L = 64*T1). It also does
  the 2xx retransmission that RFC 3261 §13.3.1.4 gives to the UAS core (on unreliable transports
  only, T1 doubling up to T2) until the TU reports the ACK with `ack_2xx_received()`. The wire
  behaviour is the same; keeping the timers in one place keeps them testable with the fake clock.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from confsec.codec.sip import Headers, Request, Response, make_response
from confsec.errors import LocalProtocolError
from confsec.net._txn_keys import client_key, server_key


@dataclass(frozen=True)
class Timers:
    """Timer values (seconds) from RFC 3261 §17 and Table 4.

    Tests use a small `t1` so that Timers B/F (64*T1) expire quickly. `d` is Timer D on unreliable
    transports ("at least 32 s"); `trying` is how long a server INVITE transaction waits for the
    TU before answering 100 Trying itself (§17.2.1: 200 ms).
    """

    t1: float = 0.5
    """Round-trip time estimate; first retransmission interval (Timers A, E, G)."""
    t2: float = 4.0
    """Cap of the retransmission interval for non-INVITE requests and INVITE responses."""
    t4: float = 5.0
    """Maximum time a message stays in the network (Timers I and K)."""
    d: float = 32.0
    """Timer D: how long a completed client INVITE transaction absorbs final responses."""
    trying: float = 0.2
    """Delay before a server INVITE transaction sends its own 100 Trying."""

    @property
    def b(self) -> float:
        """Timers B, F, H, J, L, M: 64*T1."""
        return 64 * self.t1


class State(enum.Enum):
    """Transaction states of RFC 3261 §17 plus Accepted from RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


# --------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Transmit:
    """The machine wants `message` passed to the transport (on the transaction's flow)."""

    message: Request | Response
    """What to send."""
    retransmission: bool = False
    """True when this repeats something already sent (request, response or ACK)."""


@dataclass(frozen=True)
class ResponseReceived:
    """A client transaction passes a response up to the TU."""

    response: Response
    """The response, as parsed."""
    retransmission: bool = False
    """True for a repeated 2xx seen in Accepted: the TU must ACK it again."""


@dataclass(frozen=True)
class RequestReceived:
    """A server transaction passes a new request up to the TU (once; retransmits are absorbed)."""

    request: Request
    """The request, as parsed."""


@dataclass(frozen=True)
class AckReceived:
    """A server INVITE transaction saw the ACK for its final response."""

    request: Request | None
    """The ACK (None when the TU reported an ACK for a 2xx it matched itself)."""


@dataclass(frozen=True)
class TimedOut:
    """A timer that means failure fired: B or F (no final response), H (no ACK for a non-2xx),
    L (no ACK for a 2xx after 64*T1 of retransmissions)."""

    timer: str
    """The RFC 3261 name of the timer: 'B', 'F', 'H' or 'L'."""


@dataclass(frozen=True)
class TransportFailed:
    """The transport could not send for this transaction (RFC 3261 §17.1.4 / §17.2.4)."""

    reason: str
    """Why, as the transport reported it."""


@dataclass(frozen=True)
class Terminated:
    """The transaction reached Terminated; the owner should forget it."""

    reason: str
    """Short cause: 'final', 'timeout', 'transport', 'timer D', ..."""


Event = (
    Transmit
    | ResponseReceived
    | RequestReceived
    | AckReceived
    | TimedOut
    | TransportFailed
    | Terminated
)


# ------------------------------------------------------------------------------------ the ACK


def build_ack(request: Request, response: Response) -> Request:
    """ACK for a non-2xx final response (§17.1.1.3): built by the client INVITE transaction.

    Same Request-URI, Call-ID, From, CSeq number and the single top Via (same branch) as the
    INVITE; To from the response (it carries the UAS tag); Route headers copied.
    """
    headers: list[tuple[str, str]] = []
    vias = request.headers.get_all("Via")
    if vias:
        headers.append(("Via", vias[0]))
    headers.append(("Max-Forwards", "70"))
    for name in ("From",):
        value = request.headers.get(name)
        if value is not None:
            headers.append((name, value))
    to_value = response.headers.get("To") or request.headers.get("To")
    if to_value is not None:
        headers.append(("To", to_value))
    call_id = request.headers.get("Call-ID")
    if call_id is not None:
        headers.append(("Call-ID", call_id))
    headers.append(("CSeq", f"{request.cseq[0]} ACK"))
    for route in request.headers.get_all("Route"):
        headers.append(("Route", route))
    for name in ("Authorization", "Proxy-Authorization"):
        for value in request.headers.get_all(name):
            headers.append((name, value))
    return Request("ACK", request.uri, Headers(headers))


# ------------------------------------------------------------------------------------- machines


class _Machine:
    """Timer table and event queue shared by the four machines."""

    kind = "?"

    def __init__(self, *, reliable: bool, timers: Timers) -> None:
        self.reliable = reliable
        self.timers = timers
        self.state = State.TERMINATED
        self._deadlines: dict[str, float] = {}
        self._events: deque[Event] = deque()

    # -- driving --------------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        """Absolute time at which `handle_timer` must be called next, or None."""
        if not self._deadlines:
            return None
        return min(self._deadlines.values())

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at `now`, earliest first."""
        while self._deadlines:
            name, at = min(self._deadlines.items(), key=lambda item: item[1])
            if at > now:
                return
            del self._deadlines[name]
            self._fire(name, now)

    def next_event(self) -> Event | None:
        """Pop the oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def transport_error(self, reason: str) -> None:
        """The transport failed to send for us: inform the TU and terminate (§17.1.4, §17.2.4)."""
        if self.state is State.TERMINATED:
            return
        self._events.append(TransportFailed(reason))
        self._terminate("transport")

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    # -- helpers --------------------------------------------------------------------------------
    def _set(self, name: str, at: float) -> None:
        self._deadlines[name] = at

    def _cancel(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _terminate(self, reason: str) -> None:
        self.state = State.TERMINATED
        self._deadlines.clear()
        self._events.append(Terminated(reason))

    def _wait_or_terminate(self, name: str, delay: float, now: float, reason: str) -> None:
        """Arm a linger timer (D, I, J, K), or terminate at once when it is zero (reliable)."""
        if delay <= 0:
            self._terminate(reason)
        else:
            self._set(name, now + delay)

    def _fire(self, name: str, now: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.value} reliable={self.reliable}>"


class ClientTransaction(_Machine):
    """Client INVITE (§17.1.1, with RFC 6026 Accepted) and non-INVITE (§17.1.2) transaction."""

    def __init__(self, request: Request, *, reliable: bool, timers: Timers | None = None) -> None:
        super().__init__(reliable=reliable, timers=timers or Timers())
        if request.method.upper() == "ACK":
            raise LocalProtocolError("ACK is not sent in a client transaction")
        self.request = request
        self.invite = request.method.upper() == "INVITE"
        self.kind = "ict" if self.invite else "nict"
        self.key = client_key(request)
        self.final_response: Response | None = None
        self.ack: Request | None = None
        self._interval = self.timers.t1

    def start(self, now: float) -> None:
        """Send the request and arm the timers (A+B or E+F)."""
        t = self.timers
        self.state = State.CALLING if self.invite else State.TRYING
        self._events.append(Transmit(self.request))
        if not self.reliable:
            self._interval = t.t1
            self._set("A" if self.invite else "E", now + t.t1)
        self._set("B" if self.invite else "F", now + t.b)

    def receive_response(self, response: Response, now: float) -> None:
        """Feed a response matched to this transaction."""
        if self.invite:
            self._ict_response(response, now)
        else:
            self._nict_response(response, now)

    # -- INVITE client --------------------------------------------------------------------------
    def _ict_response(self, response: Response, now: float) -> None:
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                self.state = State.PROCEEDING
                # RFC 3261: Timer A stops in Proceeding; Timer B only applies to Calling.
                self._cancel("A", "B")
                self._events.append(ResponseReceived(response))
            elif status < 300:
                self.final_response = response
                self.state = State.ACCEPTED
                self._cancel("A", "B")
                self._set("M", now + self.timers.b)
                self._events.append(ResponseReceived(response))
            else:
                self.final_response = response
                self.state = State.COMPLETED
                self._cancel("A", "B")
                self.ack = build_ack(self.request, response)
                self._events.append(ResponseReceived(response))
                self._events.append(Transmit(self.ack))
                self._wait_or_terminate("D", 0 if self.reliable else self.timers.d, now, "final")
        elif self.state is State.COMPLETED:
            if status >= 300 and self.ack is not None:
                self._events.append(Transmit(self.ack, retransmission=True))
        elif self.state is State.ACCEPTED:
            if 200 <= status < 300:
                self._events.append(ResponseReceived(response, retransmission=True))

    # -- non-INVITE client ----------------------------------------------------------------------
    def _nict_response(self, response: Response, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # Completed absorbs retransmitted finals (§17.1.2.2)
        if response.status < 200:
            self.state = State.PROCEEDING
            self._events.append(ResponseReceived(response))
            return
        self.final_response = response
        self.state = State.COMPLETED
        self._cancel("E", "F")
        self._events.append(ResponseReceived(response))
        self._wait_or_terminate("K", 0 if self.reliable else self.timers.t4, now, "final")

    # -- timers ---------------------------------------------------------------------------------
    def _fire(self, name: str, now: float) -> None:
        t = self.timers
        if name == "A" and self.state is State.CALLING:
            self._events.append(Transmit(self.request, retransmission=True))
            self._interval *= 2  # Timer A doubles without a cap (§17.1.1.2)
            self._set("A", now + self._interval)
        elif name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            self._events.append(Transmit(self.request, retransmission=True))
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, t.t2)
            else:
                self._interval = t.t2
            self._set("E", now + self._interval)
        elif (name == "B" and self.state is State.CALLING) or (
            name == "F" and self.state in (State.TRYING, State.PROCEEDING)
        ):
            self._events.append(TimedOut(name))
            self._terminate("timeout")
        elif name in ("D", "K", "M"):
            self._terminate(f"timer {name}")


class ServerTransaction(_Machine):
    """Server INVITE (§17.2.1, with RFC 6026 Accepted) and non-INVITE (§17.2.2) transaction.

    Created from the first request, which it passes up at once as `RequestReceived`.
    """

    def __init__(
        self, request: Request, now: float, *, reliable: bool, timers: Timers | None = None
    ) -> None:
        super().__init__(reliable=reliable, timers=timers or Timers())
        method = request.method.upper()
        if method == "ACK":
            raise LocalProtocolError("ACK does not create a server transaction")
        self.request = request
        self.invite = method == "INVITE"
        self.kind = "ist" if self.invite else "nist"
        self.key = server_key(request)
        self.last_response: Response | None = None
        self.acked = False
        self._interval = self.timers.t1
        self._events.append(RequestReceived(request))
        if self.invite:
            self.state = State.PROCEEDING
            self._set("trying", now + self.timers.trying)
        else:
            self.state = State.TRYING

    @property
    def final_sent(self) -> bool:
        """True once a final response went out (the TU may not send another, except 2xx
        retransmissions of an INVITE)."""
        return self.last_response is not None and self.last_response.status >= 200

    def receive_request(self, request: Request, now: float) -> None:
        """Feed a retransmitted request or an ACK matched to this transaction."""
        method = request.method.upper()
        if self.invite and method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self.acked = True
                self._cancel("G", "H")
                self._events.append(AckReceived(request))
                self._wait_or_terminate("I", 0 if self.reliable else self.timers.t4, now, "acked")
            elif self.state is State.ACCEPTED and not self.acked:
                # A peer that reuses the INVITE branch for the 2xx ACK (not RFC 3261, but seen).
                self.ack_2xx_received(request)
            return
        # A retransmission of the original request (§17.2.1, §17.2.2).
        if self.state is State.TRYING:
            return
        if self.last_response is not None and self.state in (
            State.PROCEEDING,
            State.COMPLETED,
            State.ACCEPTED,
        ):
            self._events.append(Transmit(self.last_response, retransmission=True))

    def send_response(self, response: Response, now: float) -> None:
        """The TU answers. Raises LocalProtocolError if the state does not allow it."""
        status = response.status
        if self.invite:
            self._ist_send(response, status, now)
        else:
            self._nist_send(response, status, now)

    def ack_2xx_received(self, request: Request | None = None) -> None:
        """The TU matched the ACK for our 2xx (it has its own branch): stop retransmitting."""
        if self.state is State.ACCEPTED and not self.acked:
            self.acked = True
            self._cancel("G2xx")
            self._events.append(AckReceived(request))

    # -- INVITE server --------------------------------------------------------------------------
    def _ist_send(self, response: Response, status: int, now: float) -> None:
        t = self.timers
        if self.state is State.PROCEEDING:
            self._cancel("trying")
            self.last_response = response
            self._events.append(Transmit(response))
            if status < 200:
                return
            if status < 300:
                self.state = State.ACCEPTED
                if not self.reliable:
                    self._interval = t.t1
                    self._set("G2xx", now + t.t1)
                self._set("L", now + t.b)
            else:
                self.state = State.COMPLETED
                if not self.reliable:
                    self._interval = t.t1
                    self._set("G", now + t.t1)
                self._set("H", now + t.b)
        elif self.state is State.ACCEPTED and 200 <= status < 300:
            self.last_response = response
            self._events.append(Transmit(response, retransmission=True))
        else:
            raise LocalProtocolError(
                f"cannot send {status} in INVITE server transaction state {self.state.value}"
            )

    # -- non-INVITE server ----------------------------------------------------------------------
    def _nist_send(self, response: Response, status: int, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            raise LocalProtocolError(
                f"cannot send {status} in non-INVITE server transaction state {self.state.value}"
            )
        self.last_response = response
        self._events.append(Transmit(response))
        if status < 200:
            self.state = State.PROCEEDING
            return
        self.state = State.COMPLETED
        self._wait_or_terminate("J", 0 if self.reliable else self.timers.b, now, "final")

    # -- timers ---------------------------------------------------------------------------------
    def _fire(self, name: str, now: float) -> None:
        t = self.timers
        if name == "trying" and self.state is State.PROCEEDING and self.last_response is None:
            trying = make_response(self.request, 100, "Trying")
            self.last_response = trying
            self._events.append(Transmit(trying))
        elif name == "G" and self.state is State.COMPLETED and self.last_response is not None:
            self._events.append(Transmit(self.last_response, retransmission=True))
            self._interval = min(2 * self._interval, t.t2)
            self._set("G", now + self._interval)
        elif name == "G2xx" and self.state is State.ACCEPTED and self.last_response is not None:
            self._events.append(Transmit(self.last_response, retransmission=True))
            self._interval = min(2 * self._interval, t.t2)
            self._set("G2xx", now + self._interval)
        elif name == "H" and self.state is State.COMPLETED:
            self._events.append(TimedOut("H"))
            self._terminate("timeout")
        elif name == "L" and self.state is State.ACCEPTED:
            if not self.acked:
                self._events.append(TimedOut("L"))
            self._terminate("timer L")
        elif name in ("I", "J"):
            self._terminate(f"timer {name}")
