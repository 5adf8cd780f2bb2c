"""First messages on fresh BFCP connections (R8, O5): is a connection bound to the party its
TLS certificate authenticates from the very first message?

A floor control server that binds a connection to whatever user id its first message claims,
and holds only the later messages to that binding, lets anyone with a valid certificate open a
connection and speak for someone else; one that never compares the client's certificate with
the a=fingerprint of the offer (RFC 8122 5, RFC 8856: with a=setup:active the client is the TLS
client) lets a certificate stand in for another. Both show only on a message sent first, so
each probe here opens a new TLS connection with the sender's own certificate, sends one message
before anything else, keeps what came back and closes the connection. The checks
(`floor_checks.first_foreign_refused`, `floor_checks.mismatched_certificate_refused`) judge the
observations without touching the network.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from confsec.behaviour.floor import SECURE, FloorRun, FloorSession, request_statuses, unreachable
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp
from confsec.errors import Inconclusive, PeerTimeout, TransportError
from confsec.net.bfcp import BfcpClient, Received
from confsec.net.startup import client_ssl_context
from confsec.pki import fingerprint_sha256

PRIMITIVES = {"Hello": b.Primitive.HELLO, "FloorRequest": b.Primitive.FLOOR_REQUEST}
"""The first messages a probe may send, by the name the Gherkin uses."""


@dataclass
class FirstMessage:
    """What became of one message sent first on a fresh connection."""

    sender: str
    """Whose certificate the connection presented, and whose floor session it was opened for."""
    primitive: str
    claimed: str
    """Whose user id the message carried."""
    offered: str | None
    """The SHA-256 fingerprint the sender's offer named (None: it named none)."""
    presented: str | None
    """The SHA-256 fingerprint of the certificate the connection presented."""
    started: float = 0.0
    """Suite-loop time the probe began: a control must come before the probe it stands for."""
    connected: bool = False
    tls: bool = False
    """The connection ran TLS and the server presented a certificate."""
    connect_error: str | None = None
    unreachable: bool = False
    """The connection was refused or timed out (an error of the environment, not a refusal)."""
    result: str = "unsent"
    """'answered', 'closed' (the server closed the connection instead), 'silent' (neither before
    the deadline) or 'unsent' (no connection)."""
    answer: Received | None = None
    grants: int = 0
    """FloorRequestStatus messages on the connection that reported a request Granted."""
    released: bool | None = None
    """For a granted request under the sender's own user id: whether its release came back
    Released (the floor is free again for the next probe)."""


class FirstMessages:
    """A scenario's first messages on fresh connections, in the order they were sent."""

    def __init__(self, run: FloorRun) -> None:
        self.run = run
        self.sent: list[FirstMessage] = []

    def send(self, name: str, primitive: str, *, as_user: str | None = None) -> FirstMessage:
        """`name` opens a fresh connection with its own certificate and sends `primitive`
        ('Hello' or 'FloorRequest') first, under `as_user`'s user id when given (a probe)."""
        if primitive not in PRIMITIVES:
            raise ValueError(f"a first message is one of {', '.join(PRIMITIVES)}, not {primitive}")
        s = self.run.session(name)
        claimed = self.run.session(as_user) if as_user is not None else s
        for who in (s, claimed):
            if who.answer is None or who.answer.port == 0:
                raise Inconclusive(f"{who.name} has no BFCP stream: the answer declined it")
        t = self.run.conf.target.timeouts
        first = self.run.conf.runtime.run(
            _first(self.run, s, claimed, primitive),
            t.connect + t.transaction * 3,
            f"a first BFCP {primitive} on a fresh connection",
        )
        self.sent.append(first)
        return first

    def last(self, sender: str, claimed: str | None = None) -> FirstMessage | None:
        """The last first message `sender` sent under `claimed`'s user id (its own if None)."""
        claimed = claimed or sender
        found = [f for f in self.sent if (f.sender, f.claimed) == (sender, claimed)]
        return found[-1] if found else None


async def _first(
    run: FloorRun, s: FloorSession, claimed: FloorSession, primitive: str
) -> FirstMessage:
    target = run.conf.target
    account = target.account(s.name)
    a, their = s.answer, claimed.answer
    assert a is not None and their is not None  # FirstMessages.send checked both
    first = FirstMessage(
        s.name,
        primitive,
        claimed.name,
        s.offered_fingerprint,
        fingerprint_sha256(account.client_cert).upper() if account.client_cert else None,
        started=asyncio.get_running_loop().time(),
    )
    secure = a.proto.upper() == SECURE
    try:
        client = await BfcpClient.connect(
            a.host,
            a.port,
            ssl_context=client_ssl_context(target, account, run.conf.keylog) if secure else None,
            server_hostname=target.domain,
            timeout=target.timeouts.connect,
        )
    except TransportError as exc:
        first.connect_error, first.unreachable = str(exc), unreachable(exc)
        return first
    first.connected, first.tls = True, client.peer is not None
    attrs: list[b.BfcpAttribute] = []
    if primitive == "FloorRequest":
        attrs.append(b.BfcpFloorId(floor_id=a.floor_id))
    msg = Bfcp(
        primitive=PRIMITIVES[primitive],
        conference_id=a.conference_id,
        transaction_id=s.next_txn(),
        user_id=their.user_id,
        attributes=attrs,
    )
    timeout = target.timeouts.transaction
    try:
        try:
            got = await client.transact(msg, timeout)
        except PeerTimeout:
            first.result = "silent"
        else:
            first.result, first.answer = ("closed" if got is None else "answered"), got
            if claimed is s and b.RequestStatus.GRANTED in request_statuses(got):
                first.released = await _release(s, client, got, timeout)
        first.grants = grants_received(client)
    finally:
        await client.close()
    return first


def grants_received(client: BfcpClient) -> int:
    """FloorRequestStatus messages granting a floor among all `client` received: a grant may
    arrive after the answer to the first message, and it counts against the target too."""
    return sum(
        r.message.primitive == b.Primitive.FLOOR_REQUEST_STATUS
        and b.RequestStatus.GRANTED in request_statuses(r)
        for r in client.received
    )


async def _release(s: FloorSession, client: BfcpClient, granted: Received, timeout: float) -> bool:
    """Release a floor granted under `s`'s own user id, so that the next probe finds it free."""
    fri = granted.message.attr(b.BfcpFloorRequestInformation)
    a = s.answer
    if fri is None or a is None:
        return False
    release = Bfcp(
        primitive=b.Primitive.FLOOR_RELEASE,
        conference_id=a.conference_id,
        transaction_id=s.next_txn(),
        user_id=a.user_id,
        attributes=[b.BfcpFloorRequestId(floor_request_id=fri.floor_request_id)],
    )
    try:
        got = await client.transact(release, timeout)
    except PeerTimeout:
        return False
    return b.RequestStatus.RELEASED in request_statuses(got)
