"""The UAS core of a user agent: where each new request the transactions pass up goes.

A request without usable mandatory headers is answered 400 before any transaction (§8.2,
net/validation.py); a request with a To tag belongs to a dialog (481 when there is none, and
the dialog may refuse it, §12.2.2); a CANCEL ends its INVITE (§9.2); an ACK no transaction
took confirms the dialog of a 2xx. Everything else becomes an `IncomingRequest` for the
request handler, or for the dialog's `on_request`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from confsec.codec.sip import Request, Response
from confsec.errors import ConfsecError, RemoteProtocolError
from confsec.net._dialog_fsm import DialogId, id_of_request
from confsec.net.dialog import Dialog
from confsec.net.flow import Flow
from confsec.net.incoming import (
    IncomingHandler,
    IncomingHost,
    IncomingRequest,
    default_in_dialog,
    default_out_of_dialog,
    dispatch,
)
from confsec.net.transaction import ServerTransactionHandle, TransactionLayer
from confsec.net.validation import check_request, salvage_400, stateless_response

log = logging.getLogger(__name__)

_KEPT_INCOMING = 1000


class UasCore:
    """Routes the new requests of one user agent.

    `dialogs` is the user agent's table of live dialogs; `send` sends outside any transaction
    (the stateless 400); `spawn` runs a coroutine in the user agent's background (each handler);
    `malformed` is told of every message refused as malformed, after its 400 went out.
    """

    def __init__(
        self,
        host: IncomingHost,
        transactions: TransactionLayer,
        dialogs: dict[DialogId, Dialog],
        request_handler: IncomingHandler | None,
        *,
        send: Callable[[Request | Response, Flow], None],
        spawn: Callable[[Awaitable[None]], None],
        malformed: Callable[[Flow, str], None],
    ) -> None:
        self.host = host
        self.transactions = transactions
        self.dialogs = dialogs
        self.request_handler = request_handler
        """Handler of new out-of-dialog requests; without one, OPTIONS -> 200, others -> 405."""
        self.incoming: list[IncomingRequest] = []
        """Every new request passed to the TU (the last 1000)."""
        self._send = send
        self._spawn = spawn
        self._malformed = malformed
        self._pending_invites: dict[tuple[str, ...], IncomingRequest] = {}

    def on_request(self, request: Request, flow: Flow) -> None:
        """A request arrived on `flow` (parsed, and recorded in the trace)."""
        problem = check_request(request)
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
        if request.to.tag:
            dialog = self.dialogs.get(id_of_request(request))
            incoming = IncomingRequest(self.host, request, flow, txn, dialog)
            if dialog is None:
                incoming.respond_now(481)
                return
            refusal = dialog.admit(request)
            if refusal is not None:
                incoming.respond_now(refusal.status, refusal.reason)
                return
            handler = dialog.on_request or default_in_dialog
        else:
            incoming = IncomingRequest(self.host, request, flow, txn)
            handler = self.request_handler or default_out_of_dialog
        if method == "INVITE":
            self._pending_invites[txn.key] = incoming
            self._spawn(self._forget_invite_later(txn))
        self.incoming.append(incoming)
        if len(self.incoming) > _KEPT_INCOMING:
            del self.incoming[:-_KEPT_INCOMING]
        self._spawn(dispatch(handler, incoming))

    async def _forget_invite_later(self, txn: ServerTransactionHandle) -> None:
        await txn.terminated.wait()
        self._pending_invites.pop(txn.key, None)

    def _on_ack(self, ack: Request) -> None:
        """An ACK no transaction took: the ACK for a 2xx, which confirms its dialog."""
        try:
            dialog = self.dialogs.get(id_of_request(ack))
        except RemoteProtocolError:
            return
        if dialog is None:
            log.debug("ACK for no dialog dropped (%s)", ack.call_id)
            return
        dialog.ack_received(ack)

    def _on_cancel(self, cancel: Request, flow: Flow, txn: ServerTransactionHandle) -> None:
        """§9.2: 200 to the CANCEL and 487 to the INVITE if it is still unanswered; 481 if
        there is no such INVITE."""
        invite_txn = self.transactions.find_invite_for(cancel)
        incoming_cancel = IncomingRequest(self.host, cancel, flow, txn)
        if invite_txn is None:
            incoming_cancel.respond_now(481)
            return
        invite = self._pending_invites.get(invite_txn.key)
        # The 200 to the CANCEL carries the To tag of the INVITE's answers.
        incoming_cancel.respond_now(200, to_tag=invite.to_tag if invite is not None else None)
        if invite is not None and not invite.final_sent and not invite_txn.final_sent:
            invite.respond_now(487)
            invite.cancelled.set()

    def on_unparseable(self, error: RemoteProtocolError, flow: Flow, raw: bytes) -> None:
        """Bytes on `flow` did not parse: on UDP a request gets 400 when its Via, From, To,
        Call-ID and CSeq can still be picked out (a stream is closed by the transport, since
        its framing is lost)."""
        if flow.transport == "udp":
            response = salvage_400(raw, error)
            if response is not None:
                with contextlib.suppress(ConfsecError, OSError):
                    self._send(response, flow)
        self._malformed(flow, error.reason)

    def _reply_stateless(self, request: Request, flow: Flow, status: int, reason: str) -> None:
        try:
            self._send(stateless_response(request, status, reason), flow)
        except (ConfsecError, OSError) as exc:
            log.info("cannot answer %s to %s: %s", status, flow, exc)
