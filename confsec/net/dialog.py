"""SIP dialogs (RFC 3261 §12): the state two user agents share after an INVITE succeeds.

A `Dialog` remembers the `Flow` it was made on, so that in-dialog requests (re-INVITE, UPDATE,
NOTIFY, BYE) go back over the same connection. That is what a conference focus must do with
participants behind their own TLS connections, and what lets a check say the whole call stayed
inside TLS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from confsec.codec.sip import Headers, Request, Response, header_key
from confsec.errors import LocalProtocolError
from confsec.net.transport import Flow

if TYPE_CHECKING:
    from confsec.net.transaction import ServerTransactionHandle
    from confsec.net.ua import IncomingRequest, UserAgent

log = logging.getLogger(__name__)

RequestHandler = Callable[["IncomingRequest"], Awaitable[None]]
HeaderList = Iterable[tuple[str, str]]

_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})


class Dialog:
    """One dialog, either role (`role` is 'uac' for the caller, 'uas' for the callee).

    Identified by (call_id, local_tag, remote_tag). `local_seq` is the CSeq of the last request
    we sent in it; `remote_seq` the last the peer sent (None until it sends one). `route_set`
    holds the Route values in the order they must be sent (already reversed for a UAC).
    """

    def __init__(
        self,
        ua: UserAgent,
        *,
        role: Literal["uac", "uas"],
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: str,
        remote_uri: str,
        local_seq: int,
        remote_seq: int | None,
        remote_target: str,
        route_set: Sequence[str],
        flow: Flow,
        secure: bool,
        local_display: str | None = None,
    ) -> None:
        self.ua = ua
        self.role = role
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_display = local_display
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set: list[str] = list(route_set)
        self.flow = flow
        self.secure = secure
        self.on_request: RequestHandler | None = None
        """Handler for in-dialog requests; without one, BYE -> 200 (and the dialog ends),
        INVITE and UPDATE with a body -> 488 (we cannot accept an offer we know nothing about),
        other requests -> 200."""
        self.terminated = asyncio.Event()
        """Set when the dialog ends (BYE sent or received, ACK timeout)."""
        self.confirmed = asyncio.Event()
        """Set when the INVITE that made the dialog is ACKed (UAS: ACK received; UAC: sent)."""
        self.termination_reason: str | None = None
        self.remote_sdp: bytes | None = None
        """Body of the last offer/answer from the peer (INVITE/2xx), for the media layer."""
        self.last_ack: Request | None = None
        """The last ACK we sent for a 2xx, resent if that 2xx is retransmitted."""
        self._invite_txn: ServerTransactionHandle | None = None
        self._invite_seq: int | None = None

    # -- identity -------------------------------------------------------------------------------
    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @property
    def is_terminated(self) -> bool:
        return self.terminated.is_set()

    def __repr__(self) -> str:
        state = "terminated" if self.is_terminated else "confirmed"
        return f"<Dialog {self.role} {self.call_id} {state} via {self.flow}>"

    # -- building -------------------------------------------------------------------------------
    def next_seq(self) -> int:
        """Take the CSeq number for a new request in this dialog."""
        self.local_seq += 1
        return self.local_seq

    def build_request(
        self,
        method: str,
        flow: Flow,
        *,
        cseq: int,
        body: bytes = b"",
        headers: HeaderList = (),
        content_type: str | None = None,
        branch: str | None = None,
    ) -> Request:
        """An in-dialog request (§12.2.1.1): Request-URI = remote target, Route = route set."""
        ua = self.ua
        from_value = _name_addr(self.local_display, self.local_uri, self.local_tag)
        to_value = _name_addr(None, self.remote_uri, self.remote_tag)
        base: list[tuple[str, str]] = [
            ("Via", ua.via_for(flow, branch)),
            ("Max-Forwards", "70"),
            ("From", from_value),
            ("To", to_value),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        base += [("Route", route) for route in self.route_set]
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            base.append(("Contact", ua.contact_for(flow)))
        if ua.user_agent_header:
            base.append(("User-Agent", ua.user_agent_header))
        if body and content_type:
            base.append(("Content-Type", content_type))
        return Request(method, self.remote_target, Headers(merge_headers(base, headers)), body)

    # -- sending --------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        body: bytes = b"",
        headers: HeaderList = (),
        content_type: str | None = None,
        *,
        timeout: float | None = None,
        authenticate: bool = True,
    ) -> Response:
        """Send a request inside the dialog over its flow; returns the final response.

        An INVITE here is a re-INVITE: use `reinvite`, which also ACKs a 2xx.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not sent with Dialog.request")
        if self.is_terminated and method != "BYE":
            raise LocalProtocolError(f"dialog {self.call_id} is terminated")
        extra = list(headers)

        def build(flow: Flow, auth: list[tuple[str, str]]) -> Request:
            return self.build_request(
                method,
                flow,
                cseq=self.next_seq(),
                body=body,
                headers=merge_headers(extra, auth),
                content_type=content_type,
            )

        result = await self.ua._exchange(
            build, self.target(), timeout=timeout, authenticate=authenticate
        )
        response = result.response
        if method in _REFRESH_METHODS and 200 <= response.status < 300:
            self._refresh_target(response)
        if method == "INVITE" and 200 <= response.status < 300:
            if response.body:
                self.remote_sdp = response.body
            self.send_ack(result.request, response)
        if method == "BYE":
            self._terminate("BYE sent")
        elif response.status == 481 or response.status == 408:
            # §12.2.1.2: the dialog is gone on the other side.
            self._terminate(f"{response.status} to {method}")
        return response

    async def reinvite(
        self,
        sdp: bytes,
        headers: HeaderList = (),
        *,
        content_type: str = "application/sdp",
        timeout: float | None = None,
    ) -> Response:
        """Send a re-INVITE with a new offer; a 2xx is ACKed here (§13.2.2.4)."""
        return await self.request(
            "INVITE", sdp, headers, content_type=content_type, timeout=timeout
        )

    async def bye(self, headers: HeaderList = (), *, timeout: float | None = None) -> Response:
        """End the dialog with BYE; it is terminated whatever the answer."""
        return await self.request("BYE", headers=headers, timeout=timeout)

    def target(self) -> Flow | tuple[str, str, int]:
        """Where in-dialog requests go: our flow while it is open, else the first Route (or the
        remote target) over the flow's transport."""
        if self.ua.transport.is_open(self.flow):
            return self.flow
        return self.ua.destination_for(self.route_set[0] if self.route_set else self.remote_target)

    def send_ack(self, invite: Request, response: Response) -> Request:
        """ACK a 2xx (§13.2.2.4): the TU's job, new branch, same CSeq number, sent directly."""
        cseq = invite.cseq[0]
        if self.last_ack is not None and self.last_ack.cseq[0] == cseq:
            ack = self.last_ack
        else:
            auth = [
                (name, value)
                for name in ("Authorization", "Proxy-Authorization")
                for value in invite.headers.get_all(name)
            ]
            ack = self.build_request("ACK", self.flow, cseq=cseq, headers=auth)
            self.last_ack = ack
        try:
            self.ua._send(ack, self.flow)
        except Exception as exc:
            log.info("cannot send ACK on %s: %s", self.flow, exc)
        self.confirmed.set()
        return ack

    # -- incoming -------------------------------------------------------------------------------
    def _refresh_target(self, message: Request | Response) -> None:
        contact = message.headers.get("Contact")
        if contact:
            self.remote_target = contact_uri(contact)

    def _check_remote_seq(self, request: Request) -> bool:
        """§12.2.2: a CSeq lower than the last one is out of order (answered 500)."""
        seq = request.cseq[0]
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def _expect_ack(self, txn: ServerTransactionHandle, cseq: int) -> None:
        """UAS side: we sent a 2xx to (re-)INVITE `cseq`; the ACK will come to the dialog."""
        self._invite_txn = txn
        self._invite_seq = cseq
        txn.on_timeout = self._on_ack_timeout

    def _ack_received(self, ack: Request) -> None:
        if self._invite_seq is not None and ack.cseq[0] != self._invite_seq:
            log.info("ACK with CSeq %s does not match INVITE %s", ack.cseq[0], self._invite_seq)
            return
        if ack.body:
            self.remote_sdp = ack.body
        if self._invite_txn is not None:
            self._invite_txn.ack_2xx_received(ack)
        self.confirmed.set()

    def _on_ack_timeout(self, timer: str) -> None:
        # §13.3.1.4: no ACK after 64*T1 -> the session should be ended with a BYE.
        if timer != "L" or self.is_terminated:
            return
        log.info("no ACK for 2xx in dialog %s; sending BYE", self.call_id)
        self.ua._spawn(self._bye_quietly())

    async def _bye_quietly(self) -> None:
        try:
            await self.bye()
        except Exception as exc:
            log.info("BYE after ACK timeout failed: %s", exc)
        finally:
            self._terminate("no ACK")

    def _terminate(self, reason: str) -> None:
        if self.terminated.is_set():
            return
        self.termination_reason = reason
        self.terminated.set()
        self.ua.forget_dialog(self)


# ------------------------------------------------------------------------------------- helpers


def _name_addr(display: str | None, uri: str, tag: str | None) -> str:
    text = f'"{display}" <{uri}>' if display else f"<{uri}>"
    return f"{text};tag={tag}" if tag else text


def contact_uri(contact: str) -> str:
    """The URI inside a Contact/Route value (`"x" <sip:a@b>;expires=1` -> `sip:a@b`)."""
    start = contact.find("<")
    if start != -1:
        end = contact.find(">", start)
        return contact[start + 1 : end if end != -1 else None].strip()
    return contact.split(";", 1)[0].strip()


def merge_headers(
    base: Iterable[tuple[str, str]], extra: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """`base` with every header named in `extra` replaced by `extra`'s values.

    This is how a caller overrides what the UA would put (From, Contact, Authorization...):
    the values it gives win, and a step can still craft odd messages.
    """
    extra = list(extra)
    if not extra:
        return list(base)
    override = {header_key(name) for name, _ in extra}
    return [(n, v) for n, v in base if header_key(n) not in override] + extra
