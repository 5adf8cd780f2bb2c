"""SIP dialogs (RFC 3261 §12) over asyncio: the state two user agents share after an INVITE
succeeds, bound to the flow it was made on.

A `Dialog` remembers the `Flow` it was made on, so that in-dialog requests (re-INVITE, UPDATE,
NOTIFY, BYE) go back over the same connection. That is what a conference focus must do with
participants behind their own TLS connections, and what lets a check say the whole call stayed
inside TLS.

The rules (dialog ID, CSeq order, route set, target refresh, the ACK a 2xx waits for) live in
the sans-IO `DialogState` of `_dialog_fsm`; this module sends what they call for through the
`DialogHost` its user agent implements, and needs nothing else from the user agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from confsec.codec.sip import Headers, Request, Response
from confsec.errors import ConfsecError, LocalProtocolError
from confsec.net._dialog_fsm import (
    AckAwaited,
    AckDue,
    DialogId,
    DialogState,
    Refusal,
    Role,
    is_secure,
)
from confsec.net.client import Exchange, RequestBuilder
from confsec.net.flow import Destination, Flow, NextHop
from confsec.net.headers import HeaderList, merge_headers
from confsec.net.transaction import ServerTransactionHandle

log = logging.getLogger(__name__)

# Methods whose requests carry our Contact (§12.2.1.1 target refresh, RFC 6665, RFC 3515).
_CONTACT_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogHost(Protocol):
    """What a dialog needs from the user agent it lives in (`UserAgent` implements it)."""

    user_agent_header: str | None
    """Value of the User-Agent header of our requests, or None for none."""

    def via_for(self, flow: Flow, branch: str | None = None) -> str:
        """Our Via for a request on `flow`."""
        ...

    def contact_for(self, flow: Flow) -> str:
        """Our Contact for messages on `flow`."""
        ...

    def is_open(self, flow: Flow) -> bool:
        """True if a message can still be sent on `flow` without connecting."""
        ...

    def destination_for(self, uri: str) -> Destination:
        """Where `uri` points."""
        ...

    async def exchange(
        self, build: RequestBuilder, hop: NextHop, *, timeout: float | None, authenticate: bool
    ) -> Exchange:
        """Run a client transaction for the request `build` makes, with one digest retry."""
        ...

    def send(self, message: Request | Response, flow: Flow) -> None:
        """Send outside any transaction (an ACK for a 2xx), recording it in the trace."""
        ...

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run `coro` in the background until the user agent closes."""
        ...

    def add_dialog(self, dialog: Dialog) -> None:
        """Route later requests (and ACKs) of `dialog` to it."""
        ...

    def forget_dialog(self, dialog: Dialog) -> None:
        """`dialog` ended: requests in it are answered 481 from now on."""
        ...


class Dialog:
    """One dialog, either role, and the flow its requests go on.

    The dialog's identity and sequence state are in `state` and read through the properties
    below; build one with `Dialog.uac` or `Dialog.uas`.
    """

    def __init__(self, ua: DialogHost, state: DialogState, flow: Flow) -> None:
        self.ua = ua
        """The user agent the dialog lives in."""
        self.state = state
        self.flow = flow
        self.on_request: Callable[..., Awaitable[None]] | None = None
        """Handler for in-dialog requests, called with the `IncomingRequest` (net/incoming.py);
        without one, BYE -> 200 (and the dialog ends), INVITE and UPDATE with a body -> 488 (we
        cannot accept an offer we know nothing about), other requests -> 200."""
        self.terminated = asyncio.Event()
        """Set when the dialog ends (BYE sent or received, ACK timeout)."""
        self.confirmed = asyncio.Event()
        """Set when the INVITE that made the dialog is ACKed (UAS: ACK received; UAC: sent)."""
        self.last_ack: Request | None = None
        """The last ACK we sent for a 2xx, resent if that 2xx is retransmitted."""
        self._invite_txn: ServerTransactionHandle | None = None

    @classmethod
    def uac(
        cls,
        ua: DialogHost,
        request: Request,
        response: Response,
        flow: Flow,
        *,
        secure: bool,
        local_display: str | None = None,
    ) -> Dialog:
        """The caller's dialog from the 2xx to `request`, made on `flow` (`DialogState.uac`)."""
        state = DialogState.uac(request, response, secure=secure, local_display=local_display)
        return cls(ua, state, flow)

    @classmethod
    def uas(
        cls,
        ua: DialogHost,
        request: Request,
        flow: Flow,
        *,
        local_tag: str,
        local_seq: int,
        secure: bool,
        local_display: str | None = None,
    ) -> Dialog:
        """The callee's dialog for `request`, which came on `flow` (`DialogState.uas`)."""
        state = DialogState.uas(
            request,
            local_tag=local_tag,
            local_seq=local_seq,
            secure=secure,
            local_display=local_display,
        )
        return cls(ua, state, flow)

    # -- identity -------------------------------------------------------------------------------
    @property
    def id(self) -> DialogId:
        """(Call-ID, local tag, remote tag)."""
        return self.state.id

    @property
    def role(self) -> Role:
        return self.state.role

    @property
    def call_id(self) -> str:
        return self.state.call_id

    @property
    def local_tag(self) -> str:
        return self.state.local_tag

    @property
    def remote_tag(self) -> str:
        return self.state.remote_tag

    @property
    def remote_uri(self) -> str:
        return self.state.remote_uri

    @property
    def remote_target(self) -> str:
        """Where our requests in the dialog go (the peer's last Contact)."""
        return self.state.remote_target

    @property
    def local_seq(self) -> int:
        """CSeq number of the last request we sent in the dialog."""
        return self.state.local_seq

    @property
    def route_set(self) -> tuple[str, ...]:
        return self.state.route_set

    @property
    def secure(self) -> bool:
        return self.state.secure

    @property
    def remote_sdp(self) -> bytes | None:
        """Body of the last offer/answer from the peer (INVITE, 2xx or ACK)."""
        return self.state.remote_sdp

    @property
    def termination_reason(self) -> str | None:
        return self.state.termination_reason

    @property
    def is_terminated(self) -> bool:
        return self.state.terminated

    def __repr__(self) -> str:
        state = "terminated" if self.is_terminated else "confirmed"
        return f"<Dialog {self.role} {self.call_id} {state} via {self.flow}>"

    # -- building -------------------------------------------------------------------------------
    def next_seq(self) -> int:
        """Take the CSeq number for a new request in this dialog."""
        return self.state.next_seq()

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
        base = [("Via", ua.via_for(flow, branch)), ("Max-Forwards", "70")]
        base += self.state.request_headers(method, cseq)
        if method in _CONTACT_METHODS:
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
        self.state.check_can_send(method)
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

        result = await self.ua.exchange(
            build, self.next_hop(), timeout=timeout, authenticate=authenticate
        )
        response = result.response
        for event in self.state.response_received(method, response):
            if isinstance(event, AckDue):
                self.send_ack(result.request, response)
        self._mirror_end()
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

    def next_hop(self) -> NextHop:
        """Where in-dialog requests go: our flow while it is open, else the first Route (or the
        remote target) over the flow's transport."""
        if self.ua.is_open(self.flow):
            return self.flow
        # A Route value is a header value; the remote target is a bare URI, whose parameters
        # (transport=tls) are its own and must not be read as a header's (they would be cut).
        hop = self.route_set[0] if self.route_set else f"<{self.remote_target}>"
        return self.ua.destination_for(hop)

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
            self.ua.send(ack, self.flow)
        except Exception as exc:
            log.info("cannot send ACK on %s: %s", self.flow, exc)
        self.confirmed.set()
        return ack

    def resend_ack(self, response: Response) -> None:
        """A 2xx to INVITE came again: resend our ACK if it is the 2xx we ACKed last, since
        its sender retransmits until an ACK reaches it (§13.2.2.4)."""
        if self.last_ack is not None and self.last_ack.cseq[0] == response.cseq[0]:
            with contextlib.suppress(ConfsecError, OSError):
                self.ua.send(self.last_ack, self.flow)

    # -- the peer's requests --------------------------------------------------------------------
    def admit(self, request: Request) -> Refusal | None:
        """A new request from the peer in this dialog: None when it is taken, else how the
        user agent must refuse it (§12.2.2)."""
        return self.state.admit(request)

    def answered(
        self, request: Request, response: Response, transaction: ServerTransactionHandle
    ) -> None:
        """We sent `response` to the peer's `request` (in this dialog, or the INVITE that made
        it) on `transaction`: a 2xx to INVITE waits for its ACK, one to BYE ends the dialog."""
        for event in self.state.response_sent(request, response):
            if isinstance(event, AckAwaited):
                self._invite_txn = transaction
                transaction.on_timeout = self._on_ack_timeout
        self._mirror_end()

    def ack_received(self, ack: Request) -> None:
        """The ACK for a 2xx of ours: it confirms the dialog and stops our retransmissions."""
        if not self.state.ack_received(ack):
            log.info(
                "ACK with CSeq %s does not match INVITE %s", ack.cseq[0], self.state.awaited_ack
            )
            return
        if self._invite_txn is not None:
            self._invite_txn.ack_2xx_received(ack)
        self.confirmed.set()

    def _on_ack_timeout(self, timer: str) -> None:
        # §13.3.1.4: no ACK after 64*T1 -> the session should be ended with a BYE.
        if not self.state.ack_timed_out(timer):
            return
        log.info("no ACK for 2xx in dialog %s; sending BYE", self.call_id)
        self.ua.spawn(self._bye_quietly())

    async def _bye_quietly(self) -> None:
        try:
            await self.bye()
        except Exception as exc:
            log.info("BYE after ACK timeout failed: %s", exc)
        finally:
            self.state.terminate("no ACK")
            self._mirror_end()

    def _mirror_end(self) -> None:
        """Once the state has ended (an `Ended` event), set `terminated` and leave the user
        agent's table, once."""
        if self.state.terminated and not self.terminated.is_set():
            self.terminated.set()
            self.ua.forget_dialog(self)


class CallerDialog:
    """The caller's dialog from the first 2xx to its INVITE (§12.1.2), made and ACKed as that
    2xx is read, before the caller resumes: a request the peer sends in the dialog right behind
    its 2xx (a focus rekeying a participant it has just admitted) must find the dialog. A 481
    would end it on the peer's side (§12.2.1.2). Passed as `on_2xx` (`UacCore.exchange`)."""

    def __init__(self, ua: DialogHost) -> None:
        self.ua = ua
        self.dialog: Dialog | None = None
        self.error: ConfsecError | None = None

    def __call__(self, request: Request, response: Response, flow: Flow) -> None:
        if self.dialog is not None or self.error is not None:
            return  # a second 2xx (another fork) makes no second dialog
        secure = is_secure(request, flow.secure)
        try:
            dialog = Dialog.uac(
                self.ua, request, response, flow, secure=secure, local_display=request.from_.display
            )
        except ConfsecError as exc:  # for the caller, not the transport's reader
            self.error = exc
            return
        self.ua.add_dialog(dialog)
        dialog.send_ack(request, response)
        self.dialog = dialog

    def result(self) -> Dialog | None:
        """The dialog (None: no 2xx); raises what a malformed 2xx raised."""
        if self.error is not None:
            raise self.error
        return self.dialog
