"""A new request for the TU, with the means to answer it, and what answers it by default.

In the server role, every new request goes to a handler as an `IncomingRequest`; the handler
answers with `respond()`. A 2xx to an out-of-dialog INVITE makes a UAS dialog bound to the
request's flow, so the server can later send re-INVITE/NOTIFY/BYE back over the connection the
participant opened. A handler that fails, or returns without a final answer, gets a 500 sent
for it (`dispatch`), so the peer's transaction ends instead of timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from confsec.codec.sip import Request, Response, make_response
from confsec.errors import ConfsecError
from confsec.net._dialog_fsm import is_secure
from confsec.net.dialog import Dialog, DialogHost
from confsec.net.flow import Flow
from confsec.net.headers import HeaderList, merge_headers, new_tag
from confsec.net.transaction import ServerTransactionHandle

log = logging.getLogger(__name__)

IncomingHandler = Callable[["IncomingRequest"], Awaitable[None]]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY, MESSAGE"
"""The methods we answer (the Allow header of 405 and of a 2xx to OPTIONS)."""


class IncomingHost(DialogHost, Protocol):
    """What an incoming request needs from its user agent (`UserAgent` implements it): the
    dialog host, plus the name our dialogs show and the table they go in."""

    display_name: str | None
    """Display name of our From in the dialogs we answer into being."""

    def add_dialog(self, dialog: Dialog) -> None:
        """Route later requests of `dialog` to it."""
        ...


class IncomingRequest:
    """A new request for the TU, with the means to answer it."""

    def __init__(
        self,
        ua: IncomingHost,
        request: Request,
        flow: Flow,
        transaction: ServerTransactionHandle,
        dialog: Dialog | None = None,
    ) -> None:
        self.ua = ua
        """The user agent the request came to."""
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
        if creates_dialog and 200 <= status < 300:
            self.dialog = Dialog.uas(
                self.ua,
                request,
                self.flow,
                local_tag=self.to_tag,
                local_seq=secrets.randbelow(2**16) + 1,
                secure=is_secure(request, self.flow.secure),
                local_display=self.ua.display_name,
            )
            self.ua.add_dialog(self.dialog)
        if self.dialog is not None:
            self.dialog.answered(request, response, self.transaction)
        return self.dialog

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.method} from {self.flow}>"


async def dispatch(handler: IncomingHandler, incoming: IncomingRequest) -> None:
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


async def default_out_of_dialog(incoming: IncomingRequest) -> None:
    """No request handler: OPTIONS -> 200 with Allow; anything else -> 405."""
    if incoming.method == "OPTIONS":
        await incoming.respond(200)
    else:
        await incoming.respond(405)


async def default_in_dialog(incoming: IncomingRequest) -> None:
    """No dialog handler: BYE -> 200 and the dialog ends; INVITE, and UPDATE with an offer,
    -> 488 (we cannot judge an offer for media we do not run); other requests -> 200."""
    method = incoming.method
    if method == "INVITE" or (method == "UPDATE" and incoming.request.body):
        await incoming.respond(488)
    elif method in ("BYE", "OPTIONS", "INFO", "NOTIFY", "UPDATE", "MESSAGE"):
        await incoming.respond(200)
    else:
        await incoming.respond(405)
