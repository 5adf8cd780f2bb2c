"""RFC 3261 §12 dialog state, sans-IO.

What two user agents share once an INVITE (or a SUBSCRIBE) succeeds: the dialog ID, the CSeq
numbers in each direction, the route set and the remote target, and, on the side that answered
an INVITE with 2xx, the ACK it waits for. The asyncio `Dialog` (net/dialog.py) wraps one
`DialogState` and does the sending; with the rules here they can be checked without sockets,
and the same code serves the suite's participants and the reference server.

Unlike the transaction machines of `_txn_fsm`, a dialog has no timer of its own (the wait for
the ACK is bounded by Timer L of the INVITE server transaction, which reports it with
`ack_timed_out`). Nothing happens between two inputs, so each input returns what the caller
must do, as frozen dataclasses, instead of queueing it for a `next_event()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from confsec.codec.sip import Request, Response
from confsec.errors import LocalProtocolError
from confsec.net.headers import contact_uri, name_addr

Role = Literal["uac", "uas"]
DialogId = tuple[str, str, str]
"""(Call-ID, local tag, remote tag): the same dialog has its tags in opposite order on each side."""

# Requests whose 2xx replaces the remote target with the Contact it carries (§12.2, RFC 3311).
_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})


# --------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class AckDue:
    """A 2xx answered our (re-)INVITE: the TU must ACK it itself, with CSeq number `seq`
    (§13.2.2.4: the transaction only ACKs non-2xx finals)."""

    seq: int
    """The CSeq number of the INVITE, which the ACK repeats."""


@dataclass(frozen=True)
class AckAwaited:
    """We answered a (re-)INVITE with 2xx: its ACK comes to the dialog, not to the transaction
    (§13.3.1.4). If Timer L fires first, `ack_timed_out` says to end the session."""

    seq: int
    """The CSeq number the ACK must carry."""


@dataclass(frozen=True)
class Ended:
    """The dialog is over: the owner should forget it."""

    reason: str
    """Short cause: 'BYE sent', 'BYE received', '481 to INFO', 'no ACK', ..."""


DialogEvent = AckDue | AckAwaited | Ended


@dataclass(frozen=True)
class Refusal:
    """How to answer an in-dialog request that the dialog does not take."""

    status: int
    reason: str


# ------------------------------------------------------------------------------------- the state


def id_of_request(request: Request) -> DialogId:
    """Our ID of the dialog a request from the peer belongs to (§12.2.2): its To tag is ours."""
    return (request.call_id, request.to.tag or "", request.from_.tag or "")


def id_of_response(response: Response) -> DialogId:
    """Our ID of the dialog a response to our request belongs to: its From tag is ours."""
    return (response.call_id, response.from_.tag or "", response.to.tag or "")


def is_secure(request: Request, over_tls: bool) -> bool:
    """The secure flag of a dialog made by `request` (§12.1.1, §12.1.2): sent over TLS to a
    SIPS Request-URI."""
    return over_tls and request.uri.lower().startswith("sips:")


class DialogState:
    """One dialog, either role (`role` is 'uac' for the caller, 'uas' for the callee).

    Identified by (call_id, local_tag, remote_tag). `local_seq` is the CSeq of the last request
    we sent in it; `remote_seq` the last the peer sent (None until it sends one). `route_set`
    holds the Route values in the order they must be sent (already reversed for a UAC).
    """

    def __init__(
        self,
        *,
        role: Role,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: str,
        remote_uri: str,
        local_seq: int,
        remote_seq: int | None,
        remote_target: str,
        route_set: Sequence[str],
        secure: bool,
        local_display: str | None = None,
    ) -> None:
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
        self.route_set: tuple[str, ...] = tuple(route_set)
        self.secure = secure
        self.remote_sdp: bytes | None = None
        """Body of the last offer/answer from the peer (INVITE, 2xx or ACK), for the media
        layer."""
        self.termination_reason: str | None = None
        """Why the dialog ended; None while it lasts."""
        self.awaited_ack: int | None = None
        """UAS side: CSeq number of the last (re-)INVITE we answered 2xx, whose ACK we expect."""

    # -- creation -------------------------------------------------------------------------------
    @classmethod
    def uac(
        cls,
        request: Request,
        response: Response,
        *,
        secure: bool,
        local_display: str | None = None,
    ) -> DialogState:
        """§12.1.2: the caller's dialog from the 2xx to its `request` (INVITE or SUBSCRIBE).

        The remote target is the 2xx's Contact (the Request-URI without one); the route set is
        its Record-Route in reverse order, the order in which a UAC must send it. The answer in
        the 2xx, if any, is the first remote SDP.
        """
        contact = response.headers.get("Contact")
        state = cls(
            role="uac",
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=request.from_.uri,
            remote_uri=response.to.uri,
            local_display=local_display,
            local_seq=request.cseq[0],
            remote_seq=None,
            remote_target=contact_uri(contact) if contact else request.uri,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            secure=secure,
        )
        if response.body:
            state.remote_sdp = response.body
        return state

    @classmethod
    def uas(
        cls,
        request: Request,
        *,
        local_tag: str,
        local_seq: int,
        secure: bool,
        local_display: str | None = None,
    ) -> DialogState:
        """§12.1.1: the callee's dialog from the `request` it answers with 2xx.

        The remote target is the request's Contact (its From URI without one); the route set
        is its Record-Route in the order received. `local_tag` is the tag our 2xx put in To;
        `local_seq` the first CSeq number of our own requests (§8.1.1.5 wants it random).
        """
        contact = request.headers.get("Contact")
        return cls(
            role="uas",
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=request.to.uri,
            remote_uri=request.from_.uri,
            local_display=local_display,
            local_seq=local_seq,
            remote_seq=request.cseq[0],
            remote_target=contact_uri(contact) if contact else request.from_.uri,
            route_set=request.headers.get_all("Record-Route"),
            secure=secure,
        )

    # -- identity -------------------------------------------------------------------------------
    @property
    def id(self) -> DialogId:
        """(Call-ID, local tag, remote tag)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @property
    def terminated(self) -> bool:
        return self.termination_reason is not None

    def __repr__(self) -> str:
        state = "terminated" if self.terminated else "confirmed"
        return f"<DialogState {self.role} {self.call_id} {state}>"

    # -- our requests ---------------------------------------------------------------------------
    def next_seq(self) -> int:
        """Take the CSeq number for a new request in this dialog (§12.2.1.1: one more each)."""
        self.local_seq += 1
        return self.local_seq

    def check_can_send(self, method: str) -> None:
        """Raise LocalProtocolError unless `method` may still be sent: after the dialog ended
        only a BYE may go (it ends the peer's side too)."""
        if self.terminated and method.upper() != "BYE":
            raise LocalProtocolError(f"dialog {self.call_id} is terminated")

    def request_headers(self, method: str, cseq: int) -> list[tuple[str, str]]:
        """From, To, Call-ID, CSeq and the Route set of a request in this dialog (§12.2.1.1),
        in that order; its Request-URI is `remote_target`."""
        headers = [
            ("From", name_addr(self.local_display, self.local_uri, self.local_tag)),
            ("To", name_addr(None, self.remote_uri, self.remote_tag)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        headers += [("Route", route) for route in self.route_set]
        return headers

    def response_received(self, method: str, response: Response) -> tuple[DialogEvent, ...]:
        """The final response to our in-dialog `method` request (§12.2.1.2).

        A 2xx to INVITE or UPDATE refreshes the remote target; a 2xx to INVITE carries the
        answer and must be ACKed (`AckDue`). A BYE ends the dialog whatever the answer; so do
        481 and 408, which say the dialog is gone on the other side.
        """
        method = method.upper()
        events: list[DialogEvent] = []
        ok = 200 <= response.status < 300
        if ok and method in _REFRESH_METHODS:
            self._refresh_target(response)
        if ok and method == "INVITE":
            if response.body:
                self.remote_sdp = response.body
            events.append(AckDue(response.cseq[0]))
        if method == "BYE":
            ended = self.terminate("BYE sent")
        elif response.status in (481, 408):
            ended = self.terminate(f"{response.status} to {method}")
        else:
            ended = None
        if ended is not None:
            events.append(ended)
        return tuple(events)

    # -- the peer's requests --------------------------------------------------------------------
    def admit(self, request: Request) -> Refusal | None:
        """A new (not retransmitted) request from the peer in this dialog: None when it is
        taken, else how to refuse it. §12.2.2: a CSeq number not above the last one the peer
        used is out of order (500)."""
        seq = request.cseq[0]
        if self.remote_seq is not None and seq <= self.remote_seq:
            return Refusal(500, "CSeq Out of Order")
        self.remote_seq = seq
        return None

    def response_sent(self, request: Request, response: Response) -> tuple[DialogEvent, ...]:
        """We answered the peer's `request` in this dialog (or the INVITE that made it).

        A 2xx to INVITE or UPDATE refreshes the remote target from the request's Contact; a
        2xx to INVITE takes the offer in it and waits for the ACK (`AckAwaited`); a 2xx to BYE
        ends the dialog.
        """
        if not 200 <= response.status < 300:
            return ()
        method = request.method.upper()
        if method in _REFRESH_METHODS:
            self._refresh_target(request)
        if method == "INVITE":
            if request.body:
                self.remote_sdp = request.body
            self.awaited_ack = request.cseq[0]
            return (AckAwaited(self.awaited_ack),)
        if method == "BYE":
            ended = self.terminate("BYE received")
            return (ended,) if ended is not None else ()
        return ()

    def ack_received(self, ack: Request) -> bool:
        """An ACK for a 2xx (no transaction took it): True when it is the one we wait for,
        and then a body in it is the peer's answer. An ACK whose CSeq number is not that of
        the INVITE we answered belongs to no exchange of ours and changes nothing."""
        if self.awaited_ack is not None and ack.cseq[0] != self.awaited_ack:
            return False
        if ack.body:
            self.remote_sdp = ack.body
        return True

    def ack_timed_out(self, timer: str) -> bool:
        """The transaction of our 2xx reports `timer` ('H' or 'L'): True when the session must
        now be ended with a BYE (§13.3.1.4: no ACK after 64*T1, Timer L)."""
        return timer == "L" and not self.terminated

    # -- either side ----------------------------------------------------------------------------
    def terminate(self, reason: str) -> Ended | None:
        """End the dialog; None if it had already ended (the first reason stays)."""
        if self.terminated:
            return None
        self.termination_reason = reason
        return Ended(reason)

    def _refresh_target(self, message: Request | Response) -> None:
        contact = message.headers.get("Contact")
        if contact:
            self.remote_target = contact_uri(contact)
