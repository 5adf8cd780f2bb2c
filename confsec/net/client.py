"""The UAC core of a user agent: one request in its client transaction, and the digest retry.

What a test needs beyond a plain client: a 401/407 is answered once with the credentials (so a
wrong password surfaces as the final answer, not as a loop), the last Authorization computed
is kept for replay tests, and a caller that gives up on an INVITE still in Proceeding CANCELs
it (§9.1) rather than leaving the peer ringing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from confsec.codec.digest import Challenge, DigestClient, parse_challenge
from confsec.codec.sip import Headers, Request, Response
from confsec.errors import ConfsecError, PeerTimeout, RemoteProtocolError
from confsec.net.flow import Flow
from confsec.net.transaction import ClientTransactionHandle, State, TransactionLayer

log = logging.getLogger(__name__)

RequestBuilder = Callable[[Flow, list[tuple[str, str]]], Request]
"""Makes the request to send on a flow, given the authorization headers to put in it (none on
the first try). Called again for the authenticated retry, which must take a new branch and the
next CSeq number but keep the Call-ID and the From tag."""


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


class UacCore:
    """Client transactions of one user agent, with one authenticated retry on 401/407.

    `spawn` runs a coroutine in the user agent's background (the CANCEL of an abandoned
    INVITE); `on_2xx_again` is told of every retransmitted 2xx to an INVITE, which the dialog
    that ACKed it must ACK again.
    """

    def __init__(
        self,
        transactions: TransactionLayer,
        credentials: tuple[str, str] | None,
        *,
        spawn: Callable[[Awaitable[None]], None],
        on_2xx_again: Callable[[Response], None],
    ) -> None:
        self.transactions = transactions
        self.credentials = credentials
        """(user, password) answering digest challenges; None: challenges are final."""
        self.last_authorization: str | None = None
        """The value of the last Authorization/Proxy-Authorization we computed."""
        self.last_authorization_header: str | None = None
        """'Authorization' (answer to 401) or 'Proxy-Authorization' (answer to 407)."""
        self._spawn = spawn
        self._on_2xx_again = on_2xx_again
        self._digest: DigestClient | None = None

    async def exchange(
        self,
        build: RequestBuilder,
        flow: Flow,
        *,
        timeout: float | None,
        authenticate: bool,
        on_2xx: Callable[[Request, Response, Flow], None] | None = None,
    ) -> Exchange:
        """Run a client transaction and, on 401/407 with credentials, one authenticated retry
        (new branch, next CSeq, same Call-ID and From tag: `build` sees to all but the auth).
        `timeout` bounds both tries together.

        `on_2xx` is called with the first 2xx as it is read, before the caller resumes: the peer
        may send a request in the new dialog right behind its 2xx (a focus rekeying a
        participant it has just admitted, the first NOTIFY of a REFER's subscription), and the
        dialog must exist by then."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        request = build(flow, [])
        # The response is a placeholder until the final one is known (set below).
        exchange = Exchange(request, Response(100, "Trying", Headers()), flow=flow)
        response = await self._transact(request, flow, deadline, exchange, on_2xx)
        if response.status in (401, 407) and authenticate and self.credentials is not None:
            auth = self._authorize(request, response)
            if auth is not None:
                request = build(flow, [auth])
                response = await self._transact(request, flow, deadline, exchange, on_2xx)
        exchange.request = request
        exchange.response = response
        return exchange

    async def _transact(
        self,
        request: Request,
        flow: Flow,
        deadline: float | None,
        exchange: Exchange,
        on_2xx: Callable[[Request, Response, Flow], None] | None,
    ) -> Response:
        exchange.requests.append(request)
        handle = self.transactions.start_client(request, flow)
        is_invite = request.method.upper() == "INVITE"

        def on_response(response: Response, retransmission: bool) -> None:
            is_2xx = 200 <= response.status < 300
            if not retransmission:
                exchange.responses.append(response)
                if is_2xx and on_2xx is not None:
                    on_2xx(request, response, flow)
            elif is_2xx and is_invite:
                self._on_2xx_again(response)

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
        wait = self.transactions.timers.b
        try:
            await self.transactions.start_client(cancel, handle.flow).wait(wait)
            await handle.wait(wait)
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
