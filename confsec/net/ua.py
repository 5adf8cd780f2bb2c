"""The SIP user agent shared by the suite's participants and the reference conference server.

`UserAgent` stacks the transport layer, the transaction layer and the dialogs, and adds what a
test needs on top of a plain UA: digest answers to 401/407 (retried once, so a wrong password
surfaces as the final answer), the last Authorization sent (to replay it), crafted bytes sent
outside any transaction, and a `trace` of every message with its `Flow` and time, from which the
suite draws SIP ladders and checks that a message travelled over TLS.

In the server role, every new out-of-dialog request goes to `request_handler` as an
`IncomingRequest`; the handler answers with `respond()`. A 2xx to INVITE makes a UAS dialog
bound to the request's flow, so the server can later send re-INVITE/NOTIFY/BYE back over the
connection the participant opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from confsec.codec.digest import Challenge, DigestClient, parse_challenge
from confsec.codec.sip import Headers, Request, Response, make_response, parse_message, parse_uri
from confsec.errors import (
    ConfigError,
    ConfsecError,
    LocalProtocolError,
    PeerTimeout,
    RemoteProtocolError,
    TransportError,
)
from confsec.net._txn_fsm import MAGIC_COOKIE, Timers
from confsec.net.dialog import Dialog, contact_uri, merge_headers
from confsec.net.transaction import (
    ClientTransactionHandle,
    ServerTransactionHandle,
    State,
    TransactionLayer,
)
from confsec.net.transport import Destination, Flow, TransportLayer

__all__ = [
    "Call",
    "Exchange",
    "IncomingRequest",
    "Timers",
    "TraceEntry",
    "UserAgent",
]

log = logging.getLogger(__name__)

HeaderList = Iterable[tuple[str, str]]
Target = Flow | Destination
ListenSpec = tuple[str, str, int]
"""(transport, host, port) to listen on; port 0 lets the OS choose."""
IncomingHandler = Callable[["IncomingRequest"], Awaitable[None]]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY, MESSAGE"
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
_DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class TraceEntry:
    """One message the UA sent or received."""

    direction: Literal["sent", "received"]
    """'sent' or 'received'."""
    flow: Flow
    """Where it travelled (TLS details included)."""
    message: Request | Response | bytes
    """The message; raw bytes for crafted or unparseable data."""
    time: float
    """Wall-clock time (time.time()) for reports."""

    @property
    def summary(self) -> str:
        """One ladder line: 'INVITE sips:x' or '200 OK (INVITE)'."""
        msg = self.message
        if isinstance(msg, Request):
            return f"{msg.method} {msg.uri}"
        if isinstance(msg, Response):
            try:
                method = msg.cseq[1]
            except RemoteProtocolError:
                method = "?"
            return f"{msg.status} {msg.reason} ({method})"
        return f"<{len(msg)} raw bytes>"


@dataclass
class Exchange:
    """The outcome of one request with its digest retry: what `UserAgent.request` builds on."""

    request: Request
    """The last request sent (the authenticated one after a challenge)."""
    response: Response
    """Its final response."""
    responses: list[Response] = field(default_factory=list)
    """Every response received, across the retry, provisional ones and the challenge included."""
    requests: list[Request] = field(default_factory=list)
    """Every request sent (one, or two after a challenge)."""
    flow: Flow | None = None
    """The flow the last request went on."""


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


class IncomingRequest:
    """A new request for the TU, with the means to answer it."""

    def __init__(
        self,
        ua: UserAgent,
        request: Request,
        flow: Flow,
        transaction: ServerTransactionHandle,
        dialog: Dialog | None = None,
    ) -> None:
        self.ua = ua
        self.request = request
        self.flow = flow
        self.transaction = transaction
        self.dialog = dialog
        """The dialog for an in-dialog request, else None."""
        self.responses: list[Response] = []
        self.cancelled = asyncio.Event()
        """Set when a CANCEL ended this INVITE (it was answered 487)."""
        self._to_tag: str | None = None
        self.time = time.time()

    @property
    def method(self) -> str:
        return self.request.method.upper()

    @property
    def final_sent(self) -> bool:
        return any(r.status >= 200 for r in self.responses)

    @property
    def to_tag(self) -> str:
        """The tag our responses put in To (one per request, made on first use)."""
        if self._to_tag is None:
            existing = self.request.to.tag
            self._to_tag = existing or new_tag()
        return self._to_tag

    async def respond(
        self,
        status: int,
        reason: str | None = None,
        headers: HeaderList = (),
        body: bytes = b"",
        content_type: str | None = None,
        to_tag: str | None = None,
        contact: str | None = None,
    ) -> Dialog | None:
        """Answer the request. A 2xx to an out-of-dialog INVITE returns the new UAS dialog
        (bound to this request's flow; its `confirmed` event is set when the ACK arrives);
        other answers return the request's dialog (None out of dialog).

        The UA adds Contact (1xx/2xx to INVITE, UPDATE, SUBSCRIBE; `contact` overrides it),
        Record-Route copied from the request (dialog-creating responses), Allow (405 and
        OPTIONS 2xx), Server and Content-Type; any header given in `headers` replaces the one
        the UA would add. After a CANCEL has ended the INVITE, this does nothing and returns
        None.
        """
        return self.respond_now(status, reason, headers, body, content_type, to_tag, contact)

    def respond_now(
        self,
        status: int,
        reason: str | None = None,
        headers: HeaderList = (),
        body: bytes = b"",
        content_type: str | None = None,
        to_tag: str | None = None,
        contact: str | None = None,
    ) -> Dialog | None:
        """Synchronous `respond` (for callbacks that cannot await)."""
        if self.cancelled.is_set():
            return None
        if self.transaction.fsm.terminated and not self.transaction.final_sent:
            # The connection closed before the handler answered (flow_closed ended the
            # transaction): there is no one left to answer, and it is not the handler's fault.
            log.info("%s not sent: %s closed before the answer", status, self)
            return None
        request = self.request
        method = self.method
        if to_tag is not None:
            self._to_tag = to_tag
        extra: list[tuple[str, str]] = []
        creates_dialog = method == "INVITE" and self.dialog is None
        if method in ("INVITE", "UPDATE", "SUBSCRIBE") and 100 < status < 300:
            extra.append(("Contact", contact or self.ua.contact_for(self.flow)))
            if creates_dialog:
                # §12.1.1: the dialog-creating response copies Record-Route.
                extra += [("Record-Route", rr) for rr in request.headers.get_all("Record-Route")]
        if status == 405 or (method == "OPTIONS" and 200 <= status < 300):
            extra.append(("Allow", ALLOW))
        if self.ua.user_agent_header:
            extra.append(("Server", self.ua.user_agent_header))
        if body and content_type:
            extra.append(("Content-Type", content_type))
        response = make_response(
            request,
            status,
            reason,
            to_tag=self.to_tag if status > 100 else None,
            headers=merge_headers(extra, headers),
            body=body,
        )
        self.transaction.respond(response)
        self.responses.append(response)
        if method == "INVITE" and 200 <= status < 300:
            if creates_dialog:
                dialog = self.ua._create_uas_dialog(self, response)
            else:
                dialog = self.dialog
                assert dialog is not None
                dialog._refresh_target(request)
            dialog._expect_ack(self.transaction, request.cseq[0])
            if request.body:
                dialog.remote_sdp = request.body
            return dialog
        if method == "BYE" and 200 <= status < 300 and self.dialog is not None:
            self.dialog._terminate("BYE received")
        if method == "UPDATE" and 200 <= status < 300 and self.dialog is not None:
            self.dialog._refresh_target(request)
        return self.dialog

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.method} from {self.flow}>"


class UserAgent:
    """One SIP user agent: transports, transactions, dialogs, trace. Create with `start`."""

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
        self.credentials = credentials
        self.client_ssl = client_ssl
        self.server_hostname = server_hostname
        self.request_handler = request_handler
        self.user_agent_header = user_agent_header
        self.timers = timers
        self.trace: list[TraceEntry] = []
        """Every message sent or received, in order."""
        self.transactions = TransactionLayer(self._send, timers)
        """The transaction tables (`clients`, `servers`)."""
        self.dialogs: dict[tuple[str, str, str], Dialog] = {}
        """Live dialogs by (Call-ID, local tag, remote tag)."""
        self.incoming: list[IncomingRequest] = []
        """Every new request passed to the TU (the last 1000)."""
        self.last_authorization: str | None = None
        """The value of the last Authorization/Proxy-Authorization we computed, for replay
        tests: `headers=[(ua.last_authorization_header, ua.last_authorization)]`."""
        self.last_authorization_header: str | None = None
        """'Authorization' (answer to 401) or 'Proxy-Authorization' (answer to 407)."""
        self._digest: DigestClient | None = None
        self._pending_invites: dict[tuple[str, ...], IncomingRequest] = {}
        self._waiters: list[tuple[Callable[[TraceEntry], bool], asyncio.Future[TraceEntry]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.on_malformed: Callable[[Flow, str], None] | None = None
        """Told of every message refused as malformed (bytes that do not parse, a request
        without a usable mandatory header) after the UA answered it or closed the stream: the
        reference's focus watches it (logging, and its robustness defect switch)."""

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
            for name, host, port in specs:
                if name == "udp":
                    await layer.listen_udp(host, port)
                elif name == "tcp":
                    await layer.listen_tcp(host, port)
                elif name == "tls":
                    if server_ssl is None:
                        raise ConfigError("listening on TLS needs server_ssl")
                    await layer.listen_tls(host, port, server_ssl)
                else:
                    raise ConfigError(f"unknown transport {name!r} in listen spec")
        except BaseException:
            await layer.close()
            raise
        return ua

    def address(self, transport: str) -> tuple[str, str, int]:
        """Our listening destination for `transport`, as a peer would dial it."""
        addr = self.transport.listen_address(transport)
        if addr is None:
            raise ConfigError(f"user agent does not listen on {transport}")
        return (transport, self._public_host(addr[0]), addr[1])

    async def close(self) -> None:
        """Stop everything: transactions fail with PeerTimeout, sockets close."""
        if self._closed:
            return
        self._closed = True
        self.transactions.close()
        for task in list(self._tasks):
            task.cancel()
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        await self.transport.close()

    async def __aenter__(self) -> UserAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- addressing -----------------------------------------------------------------------------
    def _public_host(self, host: str) -> str:
        return self.contact_host if host in ("0.0.0.0", "::", "") else host

    def via_for(self, flow: Flow, branch: str | None = None) -> str:
        """Our Via for a request on `flow` (rport asked for, RFC 3581)."""
        if flow.transport == "udp":
            host, port = self._public_host(flow.local[0]), flow.local[1]
        else:
            listen = self.transport.listen_address(flow.transport)
            host, port = self._public_host((listen or flow.local)[0]), (listen or flow.local)[1]
        host_text = f"[{host}]" if ":" in host else host
        return (
            f"SIP/2.0/{flow.transport.upper()} {host_text}:{port}"
            f";branch={branch or new_branch()};rport"
        )

    def contact_for(self, flow: Flow) -> str:
        """Our Contact for messages on `flow`: the listening address of that transport if we
        have one, else the flow's own local address (the peer reaches us over the flow)."""
        listen = self.transport.listen_address(flow.transport)
        host, port = listen if listen is not None else flow.local
        host = self._public_host(host)
        if host == flow.local[0] and host in ("0.0.0.0", "::"):
            host = self.contact_host
        host_text = f"[{host}]" if ":" in host else host
        user = f"{self.aor_uri.user}@" if self.aor_uri.user else ""
        if flow.transport == "tls":
            return f"<sips:{user}{host_text}:{port}>"
        if flow.transport == "tcp":
            return f"<sip:{user}{host_text}:{port};transport=tcp>"
        return f"<sip:{user}{host_text}:{port}>"

    def destination_for(self, uri: str) -> Destination:
        """Where a URI points without DNS (RFC 3263 is not used on loopback test beds):
        host and port as written, transport from `transport=` or the scheme (sips -> TLS)."""
        try:
            parsed = parse_uri(contact_uri(uri))
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"cannot route to {uri!r}: {exc}") from exc
        name = parsed.transport or ("tls" if parsed.scheme == "sips" else "udp")
        if parsed.scheme == "sips":
            name = "tls"
        if name not in _DEFAULT_PORTS:
            raise LocalProtocolError(f"unsupported transport {name!r} in {uri!r}")
        return (name, parsed.host, parsed.port or _DEFAULT_PORTS[name])

    async def resolve(self, target: Target | None, uri: str) -> Flow:
        """A flow for `target` (or for `uri` when target is None), connecting if needed."""
        if isinstance(target, Flow):
            if not self.transport.is_open(target) and target.transport != "udp":
                raise TransportError(f"connection {target} is closed")
            return target
        dest = target if target is not None else self.destination_for(uri)
        name, host, port = dest
        return await self.transport.connect(
            name,
            (host, port),
            ssl_context=self.client_ssl,
            server_hostname=self.server_hostname,
        )

    # -- sending --------------------------------------------------------------------------------
    def _send(self, message: Request | Response, flow: Flow) -> None:
        """Every SIP message we send goes through here (trace first, then the wire)."""
        self._record("sent", flow, message)
        self.transport.send_on_flow(message, flow)

    async def send_raw(self, data: bytes | Request | Response, dest: Target) -> Flow:
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
            self._record("sent", flow, recorded)
            self.transport.send_on_flow(raw, flow)
        else:
            self._send(data, flow)
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
        dest: Target | None = None,
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
        dest: Target | None = None,
        headers: HeaderList = (),
        body: bytes = b"",
        content_type: str | None = None,
        authenticate: bool = True,
        timeout: float | None = 5.0,
        to: str | None = None,
        call_id: str | None = None,
    ) -> Exchange:
        """`request`, returning every request and response of the exchange."""
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
        return await self._exchange(build, flow, timeout=timeout, authenticate=authenticate)

    async def invite(
        self,
        uri: str,
        sdp: bytes = b"",
        *,
        dest: Target | None = None,
        headers: HeaderList = (),
        authenticate: bool = True,
        timeout: float | None = 10.0,
        content_type: str = "application/sdp",
        to: str | None = None,
    ) -> Call:
        """INVITE `uri` with an SDP offer; a 2xx is ACKed and gives `call.dialog`."""
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
        )
        response = exchange.response
        dialog = None
        if 200 <= response.status < 300:
            assert exchange.flow is not None
            dialog = self._create_uac_dialog(exchange.request, response, exchange.flow)
        return Call(exchange.request, response, exchange.responses, dialog, exchange.flow)

    async def _exchange(
        self,
        build: Callable[[Flow, list[tuple[str, str]]], Request],
        target: Target,
        *,
        timeout: float | None,
        authenticate: bool,
    ) -> Exchange:
        """Run a client transaction and, on 401/407 with credentials, one authenticated retry
        (new branch, next CSeq, same Call-ID and From tag: `build` sees to all but the auth)."""
        flow = await self.resolve(target, "") if not isinstance(target, Flow) else target
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        request = build(flow, [])
        # The response is a placeholder until the final one is known (set below).
        exchange = Exchange(request, Response(100, "Trying", Headers()), flow=flow)
        response = await self._transact(request, flow, deadline, exchange)
        if response.status in (401, 407) and authenticate and self.credentials is not None:
            auth = self._authorize(request, response)
            if auth is not None:
                request = build(flow, [auth])
                response = await self._transact(request, flow, deadline, exchange)
        exchange.request = request
        exchange.response = response
        return exchange

    async def _transact(
        self, request: Request, flow: Flow, deadline: float | None, exchange: Exchange
    ) -> Response:
        exchange.requests.append(request)
        handle = self.transactions.start_client(request, flow)
        is_invite = request.method.upper() == "INVITE"

        def on_response(response: Response, retransmission: bool) -> None:
            if not retransmission:
                exchange.responses.append(response)
            elif is_invite and 200 <= response.status < 300:
                self._ack_stray_2xx(response)

        # Set before any response can arrive: start_client() only sent the request.
        handle.on_response = on_response
        loop = asyncio.get_running_loop()
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return await handle.wait(remaining)
        except PeerTimeout:
            if is_invite and handle.state is State.PROCEEDING:
                self._spawn(self._cancel_invite(handle))
            elif not handle.fsm.terminated:
                handle.abandon("caller gave up")
            raise

    async def _cancel_invite(self, handle: ClientTransactionHandle) -> None:
        """CANCEL an INVITE the caller gave up on (§9.1), then let its transaction ACK the 487."""
        invite = handle.request
        headers = [("Via", invite.headers.get_all("Via")[0]), ("Max-Forwards", "70")]
        for name in ("From", "To", "Call-ID"):
            value = invite.headers.get(name)
            if value is not None:
                headers.append((name, value))
        headers.append(("CSeq", f"{invite.cseq[0]} CANCEL"))
        headers += [("Route", r) for r in invite.headers.get_all("Route")]
        cancel = Request("CANCEL", invite.uri, Headers(headers))
        try:
            await self.transactions.start_client(cancel, handle.flow).wait(self.timers.b)
            await handle.wait(self.timers.b)
        except ConfsecError as exc:
            log.info("CANCEL of %s: %s", invite.call_id, exc)
        finally:
            if not handle.fsm.terminated and handle.state is not State.COMPLETED:
                handle.abandon("cancelled")

    def _authorize(self, request: Request, challenge: Response) -> tuple[str, str] | None:
        """The Authorization (401) or Proxy-Authorization (407) header answering `challenge`,
        or None if no challenge there can be answered (then the 401/407 is final)."""
        assert self.credentials is not None
        if challenge.status == 407:
            ask, answer = "Proxy-Authenticate", "Proxy-Authorization"
        else:
            ask, answer = "WWW-Authenticate", "Authorization"
        parsed: list[Challenge] = []
        for value in challenge.headers.get_all(ask):
            try:
                parsed.append(parse_challenge(value))
            except RemoteProtocolError as exc:
                log.info("unusable %s %r: %s", ask, value, exc)
        if not parsed:
            return None

        def preference(ch: Challenge) -> int:
            # RFC 8760 §2.4: use the strongest algorithm offered.
            algorithm = (ch.algorithm or "MD5").upper()
            return 0 if algorithm.startswith("SHA-512") else 1 if "SHA-256" in algorithm else 2

        parsed.sort(key=preference)
        if self._digest is None:
            self._digest = DigestClient(*self.credentials)
        client = self._digest
        for candidate in parsed:
            try:
                value = client.authorize(candidate, request.method, request.uri, request.body)
            except ConfsecError as exc:
                log.info("cannot answer challenge %r: %s", candidate, exc)
                continue
            self.last_authorization = value
            self.last_authorization_header = answer
            return (answer, value)
        return None

    # -- dialogs --------------------------------------------------------------------------------
    def _create_uac_dialog(self, request: Request, response: Response, flow: Flow) -> Dialog:
        """§12.1.2: a UAC dialog from a 2xx to our INVITE, then the ACK."""
        contact = response.headers.get("Contact")
        to = response.to
        from_ = request.from_
        dialog = Dialog(
            self,
            role="uac",
            call_id=request.call_id,
            local_tag=from_.tag or "",
            remote_tag=to.tag or "",
            local_uri=from_.uri,
            remote_uri=to.uri,
            local_display=from_.display,
            local_seq=request.cseq[0],
            remote_seq=None,
            remote_target=contact_uri(contact) if contact else request.uri,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            flow=flow,
            secure=flow.secure and request.uri.lower().startswith("sips:"),
        )
        if response.body:
            dialog.remote_sdp = response.body
        self.dialogs[dialog.id] = dialog
        dialog.send_ack(request, response)
        return dialog

    def _create_uas_dialog(self, incoming: IncomingRequest, response: Response) -> Dialog:
        """§12.1.1: a UAS dialog from the 2xx we sent, bound to the request's flow."""
        request = incoming.request
        contact = request.headers.get("Contact")
        from_ = request.from_
        to = request.to
        dialog = Dialog(
            self,
            role="uas",
            call_id=request.call_id,
            local_tag=incoming.to_tag,
            remote_tag=from_.tag or "",
            local_uri=to.uri,
            remote_uri=from_.uri,
            local_display=self.display_name,
            local_seq=secrets.randbelow(2**16) + 1,
            remote_seq=request.cseq[0],
            remote_target=contact_uri(contact) if contact else from_.uri,
            route_set=request.headers.get_all("Record-Route"),
            flow=incoming.flow,
            secure=incoming.flow.secure and request.uri.lower().startswith("sips:"),
        )
        self.dialogs[dialog.id] = dialog
        incoming.dialog = dialog
        return dialog

    def forget_dialog(self, dialog: Dialog) -> None:
        if self.dialogs.get(dialog.id) is dialog:
            del self.dialogs[dialog.id]

    def _ack_stray_2xx(self, response: Response) -> None:
        """A retransmitted 2xx to INVITE: ACK it again from the dialog (§13.2.2.4)."""
        try:
            key = (response.call_id, response.from_.tag or "", response.to.tag or "")
        except RemoteProtocolError:
            return
        dialog = self.dialogs.get(key)
        if dialog is not None and dialog.last_ack is not None:
            if dialog.last_ack.cseq[0] == response.cseq[0]:
                with contextlib.suppress(ConfsecError, OSError):
                    self._send(dialog.last_ack, dialog.flow)

    # -- receiving ------------------------------------------------------------------------------
    def _record(
        self,
        direction: Literal["sent", "received"],
        flow: Flow,
        message: Request | Response | bytes,
    ) -> None:
        entry = TraceEntry(direction, flow, message, time.time())
        self.trace.append(entry)
        if self._waiters and direction == "received":
            for waiter in list(self._waiters):
                predicate, fut = waiter
                if fut.done():
                    self._waiters.remove(waiter)
                    continue
                try:
                    hit = predicate(entry)
                except Exception:
                    hit = False
                if hit:
                    fut.set_result(entry)
                    self._waiters.remove(waiter)

    async def wait_for(
        self,
        predicate: Callable[[TraceEntry], bool],
        timeout: float = 5.0,
        *,
        since: int | None = None,
    ) -> TraceEntry:
        """The next received trace entry matching `predicate` (for crafted-bytes tests, which
        have no transaction to wait on). With `since` (an index into `trace`), entries already
        received from there on count too. Raises PeerTimeout."""
        if since is not None:
            for entry in self.trace[since:]:
                if entry.direction == "received" and predicate(entry):
                    return entry
        fut: asyncio.Future[TraceEntry] = asyncio.get_running_loop().create_future()
        waiter = (predicate, fut)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError as exc:
            raise PeerTimeout(f"no matching message within {timeout} s") from exc
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _on_message(self, message: Request | Response, flow: Flow) -> None:
        self._record("received", flow, message)
        if self._closed:
            return
        if isinstance(message, Response):
            self._on_response(message, flow)
        else:
            self._on_request(message, flow)

    def _on_response(self, response: Response, flow: Flow) -> None:
        try:
            if self.transactions.handle_response(response):
                return
            if response.cseq[1].upper() == "INVITE" and 200 <= response.status < 300:
                self._ack_stray_2xx(response)
        except RemoteProtocolError as exc:
            log.info("dropping malformed response from %s: %s", flow, exc)

    def _on_request(self, request: Request, flow: Flow) -> None:
        problem = _check_request(request)
        if problem is not None:
            log.info("bad request from %s: %s", flow, problem)
            if request.method.upper() != "ACK":
                self._reply_stateless(request, flow, 400, problem)
            self._malformed(flow, problem)
            return
        kind, txn = self.transactions.handle_request(request, flow)
        method = request.method.upper()
        if kind == "absorbed":
            return
        if kind == "ack":
            self._on_ack(request)
            return
        assert txn is not None
        if method == "CANCEL":
            self._on_cancel(request, flow, txn)
            return
        dialog = None
        to_tag = request.to.tag
        if to_tag:
            dialog = self.dialogs.get((request.call_id, to_tag, request.from_.tag or ""))
            incoming = IncomingRequest(self, request, flow, txn, dialog)
            if dialog is None:
                incoming.respond_now(481)
                return
            if not dialog._check_remote_seq(request):
                incoming.respond_now(500, "CSeq Out of Order")
                return
            handler = dialog.on_request or _default_in_dialog
        else:
            incoming = IncomingRequest(self, request, flow, txn)
            handler = self.request_handler or _default_out_of_dialog
        if method == "INVITE":
            self._pending_invites[txn.key] = incoming
            self._spawn(self._forget_invite_later(txn))
        self.incoming.append(incoming)
        if len(self.incoming) > 1000:
            del self.incoming[:-1000]
        self._spawn(self._dispatch(handler, incoming))

    async def _forget_invite_later(self, txn: ServerTransactionHandle) -> None:
        await txn.terminated.wait()
        self._pending_invites.pop(txn.key, None)

    async def _dispatch(self, handler: IncomingHandler, incoming: IncomingRequest) -> None:
        """Run a handler; one that fails or returns without a final answer gets a 500 sent
        for it, so the peer's transaction ends instead of timing out."""
        try:
            await handler(incoming)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler for %s failed", incoming.method)
            if not incoming.final_sent and not incoming.cancelled.is_set():
                with contextlib.suppress(ConfsecError):
                    incoming.respond_now(500)
            return
        if not incoming.final_sent and not incoming.cancelled.is_set():
            log.warning("handler for %s returned without answering: 500", incoming.method)
            with contextlib.suppress(ConfsecError):
                incoming.respond_now(500, "No Answer From Handler")

    def _on_ack(self, ack: Request) -> None:
        """An ACK no transaction took: the ACK for a 2xx, which confirms its dialog."""
        try:
            key = (ack.call_id, ack.to.tag or "", ack.from_.tag or "")
        except RemoteProtocolError:
            return
        dialog = self.dialogs.get(key)
        if dialog is None:
            log.debug("ACK for no dialog dropped (%s)", ack.call_id)
            return
        dialog._ack_received(ack)

    def _on_cancel(self, cancel: Request, flow: Flow, txn: ServerTransactionHandle) -> None:
        """§9.2: 200 to the CANCEL and 487 to the INVITE if it is still unanswered; 481 if
        there is no such INVITE."""
        invite_txn = self.transactions.find_invite_for(cancel)
        incoming_cancel = IncomingRequest(self, cancel, flow, txn)
        if invite_txn is None:
            incoming_cancel.respond_now(481)
            return
        invite = self._pending_invites.get(invite_txn.key)
        if invite is not None:
            incoming_cancel._to_tag = invite.to_tag
        incoming_cancel.respond_now(200)
        if invite is not None and not invite.final_sent and not invite_txn.final_sent:
            invite.respond_now(487)
            invite.cancelled.set()

    def _reply_stateless(self, request: Request, flow: Flow, status: int, reason: str) -> None:
        try:
            try:
                response = make_response(request, status, _safe_reason(reason), to_tag=new_tag())
            except RemoteProtocolError:  # the To itself is malformed: echo it untagged
                response = make_response(request, status, _safe_reason(reason))
            self._send(response, flow)
        except (ConfsecError, OSError) as exc:
            log.info("cannot answer %s to %s: %s", status, flow, exc)

    def _on_parse_error(self, error: RemoteProtocolError, flow: Flow, raw: bytes) -> None:
        """Unparseable bytes: recorded; on UDP a request gets 400 when its Via, From, To,
        Call-ID and CSeq can still be picked out (streams are closed by the transport)."""
        self._record("received", flow, raw)
        if flow.transport != "udp" or self._closed:
            self._malformed(flow, error.reason)
            return
        response = _salvage_400(raw, error)
        if response is not None:
            with contextlib.suppress(ConfsecError, OSError):
                self._send(response, flow)
        self._malformed(flow, error.reason)

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

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())


# ---------------------------------------------------------------------------------- defaults


async def _default_out_of_dialog(incoming: IncomingRequest) -> None:
    """No request handler: OPTIONS -> 200 with Allow; anything else -> 405."""
    if incoming.method == "OPTIONS":
        await incoming.respond(200)
    else:
        await incoming.respond(405)


async def _default_in_dialog(incoming: IncomingRequest) -> None:
    """No dialog handler: BYE -> 200 and the dialog ends; INVITE, and UPDATE with an offer,
    -> 488 (we cannot judge an offer for media we do not run); other requests -> 200."""
    method = incoming.method
    if method == "INVITE" or (method == "UPDATE" and incoming.request.body):
        await incoming.respond(488)
    elif method in ("BYE", "OPTIONS", "INFO", "NOTIFY", "UPDATE", "MESSAGE"):
        await incoming.respond(200)
    else:
        await incoming.respond(405)


def _check_request(request: Request) -> str | None:
    """Why `request` cannot be handled (missing or malformed mandatory headers), or None."""
    for name in _MANDATORY:
        values = request.headers.get_all(name)
        if not values:
            return f"Missing {name}"
        # Every response echoes these headers (RFC 3261 8.2.6.2): a second copy that does not
        # parse, or a control character the builder refuses, would break the answer later.
        if len(values) > 1 and name != "Via":
            return f"More than one {name}"
        if any(c in v for v in values for c in "\r\n\x00"):
            return f"Control character in {name}"
    try:
        # Parsing them now means the layers above can use the accessors without guarding.
        _parsed = (request.from_, request.to, request.via)
        _seq, method = request.cseq
    except RemoteProtocolError as exc:
        return f"Malformed header: {exc}"
    if method.upper() != request.method.upper():
        return "CSeq method does not match"
    return None


def _safe_reason(text: str) -> str:
    cleaned = "".join(c if " " <= c < "\x7f" else " " for c in text)
    return cleaned[:100] or "Bad Request"


def _salvage_400(raw: bytes, error: RemoteProtocolError) -> Response | None:
    """A 400 for a datagram that did not parse, built from the header lines that can be
    recognised, or None when it does not look like a request we could answer."""
    text = raw.decode("utf-8", "replace")
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].startswith("SIP/") or " SIP/2.0" not in lines[0]:
        return None
    if lines[0].split(" ", 1)[0].upper() == "ACK":
        return None
    wanted = {
        "via": "Via",
        "v": "Via",
        "from": "From",
        "f": "From",
        "to": "To",
        "t": "To",
        "call-id": "Call-ID",
        "i": "Call-ID",
        "cseq": "CSeq",
    }
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if colon and key in wanted:
            value = value.strip()
            if value and all(" " <= c or c == "\t" for c in value):
                headers.append((wanted[key], value))
    if {n for n, _ in headers} != {"Via", "From", "To", "Call-ID", "CSeq"}:
        return None
    if not any(n == "To" and ";tag=" in v for n, v in headers):
        headers = [(n, f"{v};tag={new_tag()}" if n == "To" else v) for n, v in headers]
    try:
        return Response(400, _safe_reason(f"Bad Request ({error.reason})"), Headers(headers))
    except ConfsecError:
        return None
