"""asyncio adapter for the RFC 3261 §17 transaction machines of `_txn_fsm`.

The machines are sans-IO; this module gives them the loop's clock, sends what they emit, re-arms
one `call_at` per transaction, and turns their events into futures the UA can await. Every
client transaction ends: with its final response, with `PeerTimeout` (Timer B/F), or with
`TransportError`; nothing waits forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confsec.codec.sip import Request, Response
from confsec.errors import ConfsecError, PeerTimeout, TransportError
from confsec.net._txn_fsm import (
    AckReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    Terminated,
    TimedOut,
    Timers,
    Transmit,
    TransportFailed,
)
from confsec.net._txn_keys import client_key, server_key
from confsec.net.flow import Flow

__all__ = [
    "ClientTransactionHandle",
    "ServerTransactionHandle",
    "State",
    "Timers",
    "TransactionLayer",
]

log = logging.getLogger(__name__)

SendFunc = Callable[["Request | Response", Flow], None]


class _Handle:
    """What both adapters share: pumping the machine's events and re-arming its timer."""

    fsm: ClientTransaction | ServerTransaction

    def __init__(self, layer: TransactionLayer, flow: Flow) -> None:
        self.layer = layer
        self.flow = flow
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def state(self) -> State:
        return self.fsm.state

    def _pump(self) -> None:
        fsm = self.fsm
        while (event := fsm.next_event()) is not None:
            if isinstance(event, Transmit):
                try:
                    self.layer._send(event.message, self.flow)
                except ConfsecError as exc:
                    fsm.transport_error(str(exc))
                except OSError as exc:
                    fsm.transport_error(str(exc))
            else:
                self._handle_event(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        at = fsm.next_timer()
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.fsm.handle_timer(self._loop.time())
        self._pump()

    def _handle_event(self, event: object) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ClientTransactionHandle(_Handle):
    """A running client transaction. `final` resolves with the final response or an error."""

    def __init__(self, layer: TransactionLayer, request: Request, flow: Flow) -> None:
        super().__init__(layer, flow)
        self.fsm: ClientTransaction = ClientTransaction(
            request, reliable=flow.reliable, timers=layer.timers
        )
        self.request = request
        self.responses: list[Response] = []
        """Every response passed up, provisional ones and 2xx retransmissions included."""
        self.final: asyncio.Future[Response] = self._loop.create_future()
        self.on_response: Callable[[Response, bool], None] | None = None
        """Called for each response passed up (second argument: 2xx retransmission)."""

    @property
    def key(self) -> tuple[str, str]:
        return self.fsm.key

    def start(self) -> None:
        self.fsm.start(self._loop.time())
        self._pump()

    def receive(self, response: Response) -> None:
        self.fsm.receive_response(response, self._loop.time())
        self._pump()

    async def wait(self, timeout: float | None = None) -> Response:
        """The final response; `PeerTimeout` if `timeout` passes first (the transaction's own
        Timer B/F also ends it with `PeerTimeout`)."""
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self.final)
        except TimeoutError as exc:
            raise PeerTimeout(
                f"no final response to {self.request.method} within {timeout} s"
            ) from exc

    def abandon(self, reason: str = "abandoned") -> None:
        """Stop the machine (e.g. the TU gave up); pending waiters get `PeerTimeout`."""
        if not self.fsm.terminated:
            self.fsm.state = State.TERMINATED
        self._cancel_timer()
        self.layer._forget_client(self)
        if not self.final.done():
            self.final.set_exception(PeerTimeout(reason))
            self.final.exception()  # mark retrieved

    def _handle_event(self, event: object) -> None:
        if isinstance(event, ResponseReceived):
            self.responses.append(event.response)
            if event.response.status >= 200 and not self.final.done():
                self.final.set_result(event.response)
            if self.on_response is not None:
                try:
                    self.on_response(event.response, event.retransmission)
                except Exception:
                    log.exception("on_response callback failed")
        elif isinstance(event, TimedOut):
            if not self.final.done():
                self.final.set_exception(
                    PeerTimeout(
                        f"Timer {event.timer} fired: no final response to "
                        f"{self.request.method} after {self.fsm.timers.b:g} s on {self.flow}"
                    )
                )
                self.final.exception()
        elif isinstance(event, TransportFailed):
            if not self.final.done():
                self.final.set_exception(TransportError(event.reason))
                self.final.exception()
        elif isinstance(event, Terminated):
            self._cancel_timer()
            self.layer._forget_client(self)


class ServerTransactionHandle(_Handle):
    """A running server transaction; the TU answers with `respond(response)`."""

    def __init__(self, layer: TransactionLayer, request: Request, flow: Flow) -> None:
        super().__init__(layer, flow)
        self.fsm: ServerTransaction = ServerTransaction(
            request, self._loop.time(), reliable=flow.reliable, timers=layer.timers
        )
        self.request = request
        self.acked = asyncio.Event()
        """Set when the ACK for our final response (2xx or not) arrives."""
        self.on_timeout: Callable[[str], None] | None = None
        """Called with 'H' or 'L' when the ACK never came."""
        self.terminated = asyncio.Event()

    @property
    def key(self) -> tuple[str, ...]:
        return self.fsm.key

    @property
    def final_sent(self) -> bool:
        return self.fsm.final_sent

    def respond(self, response: Response) -> None:
        """Send a response through the machine (raises LocalProtocolError when not allowed)."""
        self.fsm.send_response(response, self._loop.time())
        self._pump()

    def receive(self, request: Request) -> None:
        self.fsm.receive_request(request, self._loop.time())
        self._pump()

    def ack_2xx_received(self, request: Request | None = None) -> None:
        self.fsm.ack_2xx_received(request)
        self._pump()

    def _handle_event(self, event: object) -> None:
        if isinstance(event, RequestReceived):
            return  # the layer hands the new request to the TU itself
        if isinstance(event, AckReceived):
            self.acked.set()
        elif isinstance(event, TimedOut):
            if self.on_timeout is not None:
                try:
                    self.on_timeout(event.timer)
                except Exception:
                    log.exception("on_timeout callback failed")
        elif isinstance(event, TransportFailed):
            log.info("cannot answer %s on %s: %s", self.request.method, self.flow, event.reason)
        elif isinstance(event, Terminated):
            self._cancel_timer()
            self.terminated.set()
            self.layer._forget_server(self)


class TransactionLayer:
    """The tables of client and server transactions of one UA, matched as in §17.1.3/§17.2.3.

    `send(message, flow)` is how the layer transmits (the UA wraps it to record its trace).
    """

    def __init__(self, send: SendFunc, timers: Timers | None = None) -> None:
        self._send_func = send
        self.timers = timers or Timers()
        self.clients: dict[tuple[str, str], ClientTransactionHandle] = {}
        self.servers: dict[tuple[str, ...], ServerTransactionHandle] = {}
        self.completed_clients = 0
        self.completed_servers = 0

    def _send(self, message: Request | Response, flow: Flow) -> None:
        self._send_func(message, flow)

    # -- client side ----------------------------------------------------------------------------
    def start_client(self, request: Request, flow: Flow) -> ClientTransactionHandle:
        """Create a client transaction for `request` on `flow` and send the request."""
        handle = ClientTransactionHandle(self, request, flow)
        self.clients[handle.key] = handle
        handle.start()
        return handle

    def handle_response(self, response: Response) -> bool:
        """Give a response to its client transaction; False if none matches (a stray 2xx
        retransmission after the transaction ended is the TU's business)."""
        handle = self.clients.get(client_key(response))
        if handle is None:
            return False
        handle.receive(response)
        return True

    def _forget_client(self, handle: ClientTransactionHandle) -> None:
        if self.clients.get(handle.key) is handle:
            del self.clients[handle.key]
            self.completed_clients += 1

    # -- server side ----------------------------------------------------------------------------
    def handle_request(
        self, request: Request, flow: Flow
    ) -> tuple[str, ServerTransactionHandle | None]:
        """Match an incoming request.

        Returns ('new', handle) for a request the TU must answer, ('absorbed', handle) for a
        retransmission or a non-2xx ACK the transaction dealt with, ('ack', None) for an ACK that
        matches no transaction (the ACK for a 2xx, which belongs to the dialog).
        """
        key = server_key(request)
        handle = self.servers.get(key)
        if handle is not None:
            if request.method.upper() == "ACK" and handle.fsm.state is State.ACCEPTED:
                # RFC 3261 ACKs for 2xx carry a new branch; if a peer reused the INVITE's, let
                # the dialog see it too (it confirms the dialog and stops 2xx retransmissions).
                handle.receive(request)
                return ("ack", None)
            handle.receive(request)
            return ("absorbed", handle)
        if request.method.upper() == "ACK":
            return ("ack", None)
        handle = ServerTransactionHandle(self, request, flow)
        self.servers[key] = handle
        handle._pump()
        return ("new", handle)

    def find_invite_for(self, cancel: Request) -> ServerTransactionHandle | None:
        """The INVITE server transaction a CANCEL (same branch and sent-by) refers to."""
        key = server_key(cancel)
        return self.servers.get((*key[:-1], "INVITE"))

    def _forget_server(self, handle: ServerTransactionHandle) -> None:
        if self.servers.get(handle.key) is handle:
            del self.servers[handle.key]
            self.completed_servers += 1

    # -- failures -------------------------------------------------------------------------------
    def flow_closed(self, flow: Flow, reason: str) -> None:
        """A stream connection went away: transactions bound to it fail now instead of timing
        out (their messages can no longer be delivered)."""
        for handle in list(self.clients.values()):
            if handle.flow == flow and not handle.fsm.terminated:
                if handle.fsm.state in (State.CALLING, State.TRYING, State.PROCEEDING):
                    handle.fsm.transport_error(reason)
                    handle._pump()
        for server in list(self.servers.values()):
            if server.flow == flow and not server.fsm.terminated:
                server.fsm.transport_error(reason)
                server._pump()

    def close(self) -> None:
        """Stop every timer and fail every pending client transaction."""
        for handle in list(self.clients.values()):
            handle.abandon("user agent closed")
        for server in list(self.servers.values()):
            server._cancel_timer()
        self.servers.clear()
