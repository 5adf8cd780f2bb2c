"""The SIP user agent shared by the suite's participants and the reference conference server.

`UserAgent` stacks the transport layer, the transaction layer and the dialogs, and adds what a
test needs on top of a plain UA: digest answers to 401/407 (net/client.py), crafted bytes sent
outside any transaction, and a `trace` of every message with its `Flow` and time
(net/trace.py), from which the suite draws SIP ladders and checks that a message travelled over
TLS. It is the asyncio adapter that wires those parts together: the rules live below it, in the
transaction and dialog cores, the request checks (net/validation.py) and `IncomingRequest`
(net/incoming.py).

In the server role, every new out-of-dialog request goes to `request_handler` as an
`IncomingRequest`; the handler answers with `respond()`. Requests in a dialog go to the
dialog's `on_request` handler.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from confsec.codec.sip import Headers, Request, Response, parse_message, parse_uri
from confsec.errors import (
    ConfigError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from confsec.net._dialog_fsm import DialogId, id_of_response
from confsec.net._txn_fsm import Timers
from confsec.net.addressing import LocalAddresses, destination_for
from confsec.net.client import Exchange, RequestBuilder, UacCore
from confsec.net.dialog import CallerDialog, Dialog
from confsec.net.flow import Destination, Flow, NextHop
from confsec.net.headers import HeaderList, merge_headers, new_tag
from confsec.net.incoming import IncomingHandler, IncomingRequest
from confsec.net.server import UasCore
from confsec.net.trace import TraceEntry, TracePredicate, TraceRecorder
from confsec.net.transaction import TransactionLayer
from confsec.net.transport import ListenSpec, TransportLayer

__all__ = ["Call", "UserAgent"]

log = logging.getLogger(__name__)


@dataclass
class Call:
    """Outcome of `UserAgent.invite`."""

    request: Request
    """The last INVITE sent."""
    response: Response
    """The final response to it."""
    responses: list[Response]
    """All responses, the 401/407 challenge and provisional ones included."""
    dialog: Dialog | None
    """The dialog a 2xx created, else None."""
    flow: Flow | None = None
    """The flow the INVITE went on."""


class UserAgent:
    """One SIP user agent: transports, transactions, dialogs, trace. Create with `start`.

    It is the `DialogHost` of its dialogs and the `IncomingHost` of the requests it receives.
    """

    def __init__(
        self,
        *,
        aor: str,
        display_name: str | None,
        contact_host: str,
        transport: TransportLayer,
        credentials: tuple[str, str] | None,
        client_ssl: ssl.SSLContext | None,
        server_hostname: str | None,
        request_handler: IncomingHandler | None,
        user_agent_header: str | None,
        timers: Timers,
    ) -> None:
        try:
            self.aor_uri = parse_uri(aor)
        except RemoteProtocolError as exc:
            raise ConfigError(f"bad AOR {aor!r}: {exc}") from exc
        self.aor = aor
        self.display_name = display_name
        self.contact_host = contact_host
        self.transport = transport
        self.addresses = LocalAddresses(transport, contact_host, self.aor_uri.user)
        """How we name ourselves in Via and Contact."""
        self.client_ssl = client_ssl
        self.server_hostname = server_hostname
        self.user_agent_header = user_agent_header
        self.timers = timers
        self._recorder = TraceRecorder()
        self.trace: list[TraceEntry] = self._recorder.entries
        """Every message sent or received, in order."""
        self.transactions = TransactionLayer(self.send, timers)
        """The transaction tables (`clients`, `servers`)."""
        self.uac = UacCore(
            self.transactions, credentials, spawn=self.spawn, on_2xx_again=self._ack_2xx_again
        )
        """Client transactions with the digest retry."""
        self.dialogs: dict[DialogId, Dialog] = {}
        """Live dialogs by (Call-ID, local tag, remote tag)."""
        self.uas = UasCore(
            self,
            self.transactions,
            self.dialogs,
            request_handler,
            send=self.send,
            spawn=self.spawn,
            malformed=self._malformed,
        )
        """Where new requests go: validation, dialogs, CANCEL, the request handler."""
        self.incoming: list[IncomingRequest] = self.uas.incoming
        """Every new request passed to the TU (the last 1000)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.on_malformed: Callable[[Flow, str], None] | None = None
        """Told of every message refused as malformed (bytes that do not parse, a request
        without a usable mandatory header) after the UA answered it or closed the stream: the
        reference's focus watches it (logging, and its robustness defect switch)."""

    @property
    def request_handler(self) -> IncomingHandler | None:
        """Handler of new out-of-dialog requests (see `UasCore`)."""
        return self.uas.request_handler

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) answering digest challenges, or None."""
        return self.uac.credentials

    @property
    def last_authorization(self) -> str | None:
        """The value of the last Authorization/Proxy-Authorization we computed, for replay
        tests: `headers=[(ua.last_authorization_header, ua.last_authorization)]`."""
        return self.uac.last_authorization

    @property
    def last_authorization_header(self) -> str | None:
        """'Authorization' (answer to 401) or 'Proxy-Authorization' (answer to 407)."""
        return self.uac.last_authorization_header

    # -- lifecycle ------------------------------------------------------------------------------
    @classmethod
    async def start(
        cls,
        aor: str,
        display_name: str | None = None,
        contact_host: str = "127.0.0.1",
        transport: TransportLayer | Sequence[ListenSpec] | None = None,
        credentials: tuple[str, str] | None = None,
        client_ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        request_handler: IncomingHandler | None = None,
        user_agent_header: str | None = "confsec/0.1",
        timers: Timers | None = None,
        *,
        server_ssl: ssl.SSLContext | None = None,
    ) -> UserAgent:
        """Create a UA and bind its listeners.

        `transport` is a ready `TransportLayer` (the UA takes it over and closes it), or listen
        specs `[("tls", "127.0.0.1", 0), ...]` (a TLS spec needs `server_ssl`), or None for a
        client that only opens outgoing connections (UDP gets an ephemeral socket on demand).
        """
        if isinstance(transport, TransportLayer):
            layer = transport
            specs: Sequence[ListenSpec] = ()
        else:
            layer = TransportLayer(client_ssl=client_ssl, server_hostname=server_hostname)
            specs = transport or ()
        if client_ssl is not None and layer.client_ssl is None:
            layer.client_ssl = client_ssl
        if server_hostname is not None and layer.server_hostname is None:
            layer.server_hostname = server_hostname
        ua = cls(
            aor=aor,
            display_name=display_name,
            contact_host=contact_host,
            transport=layer,
            credentials=credentials,
            client_ssl=client_ssl,
            server_hostname=server_hostname,
            request_handler=request_handler,
            user_agent_header=user_agent_header,
            timers=timers or Timers(),
        )
        layer.set_handlers(ua._on_message, ua._on_parse_error, ua._on_closed)
        try:
            for spec in specs:
                await layer.listen(spec, server_ssl)
        except BaseException:
            await layer.close()
            raise
        return ua

    def address(self, transport: str) -> Destination:
        """Our listening destination for `transport`, as a peer would dial it."""
        return self.addresses.listening(transport)

    async def close(self) -> None:
        """Stop everything: transactions fail with PeerTimeout, sockets close."""
        if self._closed:
            return
        self._closed = True
        self.transactions.close()
        for task in list(self._tasks):
            task.cancel()
        self._recorder.close()
        await self.transport.close()

    async def __aenter__(self) -> UserAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- addressing -----------------------------------------------------------------------------
    def via_for(self, flow: Flow, branch: str | None = None) -> str:
        """Our Via for a request on `flow` (rport asked for, RFC 3581)."""
        return self.addresses.via_for(flow, branch)

    def contact_for(self, flow: Flow) -> str:
        """Our Contact for messages on `flow` (see `LocalAddresses.contact_for`)."""
        return self.addresses.contact_for(flow)

    def destination_for(self, uri: str) -> Destination:
        """Where a URI points, without DNS (see `addressing.destination_for`)."""
        return destination_for(uri)

    def is_open(self, flow: Flow) -> bool:
        """True if a message can still be sent on `flow` without connecting."""
        return self.transport.is_open(flow)

    async def resolve(self, hop: NextHop | None, uri: str) -> Flow:
        """A flow for `hop` (or for `uri` when hop is None), connecting if needed."""
        if isinstance(hop, Flow):
            if not self.transport.is_open(hop) and hop.transport != "udp":
                raise TransportError(f"connection {hop} is closed")
            return hop
        dest = hop if hop is not None else self.destination_for(uri)
        name, host, port = dest
        return await self.transport.connect(
            name,
            (host, port),
            ssl_context=self.client_ssl,
            server_hostname=self.server_hostname,
        )

    # -- sending --------------------------------------------------------------------------------
    def send(self, message: Request | Response, flow: Flow) -> None:
        """Every SIP message we send goes through here (trace first, then the wire)."""
        self._recorder.record("sent", flow, message)
        self.transport.send_on_flow(message, flow)

    async def send_raw(self, data: bytes | Request | Response, dest: NextHop) -> Flow:
        """Send crafted bytes (or a message) outside any transaction; returns the flow used.

        The trace keeps the message if the bytes parse, else the raw bytes.
        """
        flow = await self.resolve(dest, "")
        if isinstance(data, bytes | bytearray):
            raw = bytes(data)
            try:
                recorded: Request | Response | bytes = parse_message(raw)
            except RemoteProtocolError:
                recorded = raw
            self._recorder.record("sent", flow, recorded)
            self.transport.send_on_flow(raw, flow)
        else:
            self.send(data, flow)
        return flow

    def build_request(
        self,
        method: str,
        uri: str,
        flow: Flow,
        *,
        call_id: str,
        from_tag: str,
        cseq: int,
        to: str | None = None,
        headers: HeaderList = (),
        body: bytes = b"",
        content_type: str | None = None,
        branch: str | None = None,
    ) -> Request:
        """An out-of-dialog request from this UA (§8.1.1); `headers` override the defaults."""
        display = f'"{self.display_name}" ' if self.display_name else ""
        base: list[tuple[str, str]] = [
            ("Via", self.via_for(flow, branch)),
            ("Max-Forwards", "70"),
            ("From", f"{display}<{self.aor}>;tag={from_tag}"),
            ("To", to or f"<{uri}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", self.contact_for(flow)),
        ]
        if self.user_agent_header:
            base.append(("User-Agent", self.user_agent_header))
        if body and content_type:
            base.append(("Content-Type", content_type))
        return Request(method, uri, Headers(merge_headers(base, headers)), body)

    async def request(
        self,
        method: str,
        uri: str,
        *,
        dest: NextHop | None = None,
        headers: HeaderList = (),
        body: bytes = b"",
        content_type: str | None = None,
        authenticate: bool = True,
        timeout: float | None = 5.0,
        to: str | None = None,
        call_id: str | None = None,
    ) -> Response:
        """Send an out-of-dialog request in a client transaction; returns the final response.

        Raises `PeerTimeout` (Timer B/F or `timeout`), `TransportError`, `TlsVerificationError`.
        """
        return (
            await self.request_exchange(
                method,
                uri,
                dest=dest,
                headers=headers,
                body=body,
                content_type=content_type,
                authenticate=authenticate,
                timeout=timeout,
                to=to,
                call_id=call_id,
            )
        ).response

    async def request_exchange(
        self,
        method: str,
        uri: str,
        *,
        dest: NextHop | None = None,
        headers: HeaderList = (),
        body: bytes = b"",
        content_type: str | None = None,
        authenticate: bool = True,
        timeout: float | None = 5.0,
        to: str | None = None,
        call_id: str | None = None,
        on_2xx: Callable[[Request, Response, Flow], None] | None = None,
    ) -> Exchange:
        """`request`, returning every request and response of the exchange (`on_2xx`: see
        `UacCore.exchange`)."""
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not sent with request(); use send_raw")
        call_id = call_id or f"{secrets.token_hex(10)}@{self.contact_host}"
        from_tag = new_tag()
        extra = list(headers)
        cseq = 0

        def build(flow: Flow, auth: list[tuple[str, str]]) -> Request:
            nonlocal cseq
            cseq += 1  # 1, then 2 for the authenticated retry (same Call-ID and From tag)
            return self.build_request(
                method,
                uri,
                flow,
                call_id=call_id,
                from_tag=from_tag,
                cseq=cseq,
                to=to,
                headers=merge_headers(extra, auth),
                body=body,
                content_type=content_type,
            )

        flow = await self.resolve(dest, uri)
        return await self.uac.exchange(
            build, flow, timeout=timeout, authenticate=authenticate, on_2xx=on_2xx
        )

    async def invite(
        self,
        uri: str,
        sdp: bytes = b"",
        *,
        dest: NextHop | None = None,
        headers: HeaderList = (),
        authenticate: bool = True,
        timeout: float | None = 10.0,
        content_type: str = "application/sdp",
        to: str | None = None,
    ) -> Call:
        """INVITE `uri` with an SDP offer; a 2xx is ACKed and gives `call.dialog`, made as
        the 2xx is read (`CallerDialog`)."""
        made = CallerDialog(self)
        exchange = await self.request_exchange(
            "INVITE",
            uri,
            dest=dest,
            headers=headers,
            body=sdp,
            content_type=content_type if sdp else None,
            authenticate=authenticate,
            timeout=timeout,
            to=to,
            on_2xx=made,
        )
        return Call(
            exchange.request, exchange.response, exchange.responses, made.result(), exchange.flow
        )

    async def exchange(
        self,
        build: RequestBuilder,
        hop: NextHop,
        *,
        timeout: float | None,
        authenticate: bool,
    ) -> Exchange:
        """Run a client transaction for the request `build` makes on the flow to `hop`, with
        one authenticated retry on 401/407 (see `UacCore.exchange`)."""
        flow = hop if isinstance(hop, Flow) else await self.resolve(hop, "")
        return await self.uac.exchange(build, flow, timeout=timeout, authenticate=authenticate)

    # -- dialogs --------------------------------------------------------------------------------
    def add_dialog(self, dialog: Dialog) -> None:
        """Route later requests (and ACKs) of `dialog` to it."""
        self.dialogs[dialog.id] = dialog

    def forget_dialog(self, dialog: Dialog) -> None:
        """`dialog` ended: later requests in it are answered 481."""
        if self.dialogs.get(dialog.id) is dialog:
            del self.dialogs[dialog.id]

    def _ack_2xx_again(self, response: Response) -> None:
        """A retransmitted 2xx to INVITE: ACK it again from the dialog (§13.2.2.4)."""
        try:
            dialog = self.dialogs.get(id_of_response(response))
        except RemoteProtocolError:
            return
        if dialog is not None:
            dialog.resend_ack(response)

    # -- receiving ------------------------------------------------------------------------------
    async def wait_for(
        self,
        predicate: TracePredicate,
        timeout: float = 5.0,
        *,
        since: int | None = None,
    ) -> TraceEntry:
        """The next received trace entry matching `predicate` (for crafted-bytes tests, which
        have no transaction to wait on). With `since` (an index into `trace`), entries already
        received from there on count too. Raises PeerTimeout."""
        return await self._recorder.wait_for(predicate, timeout, since)

    def _on_message(self, message: Request | Response, flow: Flow) -> None:
        self._recorder.record("received", flow, message)
        if self._closed:
            return
        if isinstance(message, Response):
            self._on_response(message, flow)
        else:
            self.uas.on_request(message, flow)

    def _on_response(self, response: Response, flow: Flow) -> None:
        try:
            if self.transactions.handle_response(response):
                return
            if response.cseq[1].upper() == "INVITE" and 200 <= response.status < 300:
                self._ack_2xx_again(response)
        except RemoteProtocolError as exc:
            log.info("dropping malformed response from %s: %s", flow, exc)

    def _on_parse_error(self, error: RemoteProtocolError, flow: Flow, raw: bytes) -> None:
        self._recorder.record("received", flow, raw)
        if not self._closed:
            self.uas.on_unparseable(error, flow, raw)

    def _malformed(self, flow: Flow, why: str) -> None:
        if self.on_malformed is None or self._closed:
            return
        try:
            self.on_malformed(flow, why)
        except Exception:  # an observer must not break the receive path
            log.exception("on_malformed observer failed for %s", flow)

    def _on_closed(self, flow: Flow, exc: Exception | None) -> None:
        reason = f"connection {flow} closed" + (f": {exc}" if exc else "")
        self.transactions.flow_closed(flow, reason)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run `coro` in the background; `close` cancels it, and a failure is logged."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())
