"""Floor control as the suite drives it (R8, O5): BFCP negotiated in SDP, then spoken over TLS.

`FloorRun` is the per-scenario face the steps talk to. It adds an `m=application ...
TCP/TLS/BFCP *` line (RFC 8856: a=setup:active, a=connection:new, a=floorctrl:c-only and the
fingerprint of the participant's own certificate) to a participant's normal secure offer, reads
a=confid, a=userid, a=floorid and a=fingerprint from the answer, and opens the BFCP connection
with `confsec.net.bfcp.BfcpClient`. Every exchange runs on the conference's suite loop with the
target's deadlines; the observations are kept, and the checks (confsec.behaviour.floor_checks)
judge them without touching the network.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from confsec.behaviour.bfcp_samples import malformed_samples
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.outcomes import CallOutcome
from confsec.behaviour.participant import OfferSpec
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp
from confsec.codec.sdp import MediaDescription
from confsec.errors import (
    Inconclusive,
    PeerTimeout,
    TargetUnreachable,
    TransportError,
)
from confsec.net.bfcp import BfcpClient, Received
from confsec.net.startup import client_ssl_context
from confsec.pki import fingerprint_sha256

SECURE = "TCP/TLS/BFCP"
PLAIN = "TCP/BFCP"


def floor_offer_line(client_cert: Path | None, proto: str = "TCP/TLS/BFCP") -> MediaDescription:
    """The m=application line that asks for floor control (RFC 8856): the client sets up the
    connection, and over TLS names its certificate by fingerprint so the server can bind it."""
    attrs: list[tuple[str, str | None]] = [
        ("setup", "active"),
        ("connection", "new"),
        ("floorctrl", "c-only"),
    ]
    if client_cert is not None:
        attrs.append(("fingerprint", f"SHA-256 {fingerprint_sha256(client_cert)}"))
    return MediaDescription.build(
        "application", port=9, proto=proto, formats=["*"], attributes=attrs
    )


@dataclass
class FloorAnswer:
    """The BFCP m-line of an SDP answer (RFC 8856)."""

    host: str
    port: int
    proto: str
    attributes: dict[str, str]

    @property
    def conference_id(self) -> int:
        return int(self.attributes.get("confid", "0") or 0)

    @property
    def user_id(self) -> int:
        return int(self.attributes.get("userid", "0") or 0)

    @property
    def floor_id(self) -> int:
        return int((self.attributes.get("floorid", "0") or "0").split()[0])

    @property
    def fingerprint(self) -> tuple[str, str] | None:
        value = self.attributes.get("fingerprint")
        if not value or " " not in value:
            return None
        algo, fp = value.split(" ", 1)
        return algo.upper(), fp.strip().upper()


@dataclass
class FloorCycle:
    """One participant's Hello, FloorRequest and FloorRelease under its own user id.

    What a grant check reads, and what a positive control is made of: a negative check (a
    foreign user id refused, malformed input survived) proves something only if the same
    server, on the same kind of connection, did grant an honest request.
    """

    started: float = 0.0
    """Suite-loop time the cycle began, so that a check can tell it came after something."""
    connected: bool = False
    """A connection was open for the cycle (reused or opened for it)."""
    tls: bool = False
    """The connection ran TLS and the server presented a certificate."""
    answers: dict[str, Received | None] = field(default_factory=dict)
    """Primitive sent -> its answer (None: the server closed the connection instead); a
    primitive not in it was not sent because an earlier one went wrong."""
    silent: str | None = None
    """The primitive that got no answer before the deadline, if one did not."""


@dataclass
class FloorSession:
    """One participant's floor control: what SDP said, the connection, what was exchanged."""

    name: str
    outcome: CallOutcome
    answer: FloorAnswer | None = None
    client: BfcpClient | None = None
    connect_error: str | None = None
    unreachable: bool = False
    """The last connection attempt was refused or timed out (TLS trouble is not this): the
    server could not be reached at all, which is an error of the environment, not a finding."""
    exchanges: list[tuple[str, Received | None]] = field(default_factory=list)
    """(what was sent, the answer or None when the server closed the connection)."""
    cycle: FloorCycle | None = None
    """The last request-and-release under the participant's own user id."""
    offered_fingerprint: str | None = None
    """The SHA-256 fingerprint the offer's a=fingerprint named (None: it named none)."""
    _txn: int = 0

    def next_txn(self) -> int:
        self._txn += 1
        return self._txn


DELIVERED = ("error", "answered", "closed", "silent")
"""Results of a probe that reached the server; 'unsent' probes are not evidence."""
BASELINE_CONTROL = "a well-formed Hello got HelloAck just before the malformed messages"
"""The positive control of the malformed-input checks, as the evidence names it."""


@dataclass
class FuzzProbe:
    """What became of one malformed message."""

    sent: bytes
    result: str
    """'error', 'answered' (another message), 'closed', 'silent', or 'unsent' (it never reached
    the server: no connection to send it on, or the batch stopped after the server went silent
    or could no longer be reached)."""
    answer: str | None = None
    """The primitive of the answer, when there was one."""

    @property
    def delivered(self) -> bool:
        return self.result in DELIVERED


def unreachable(exc: TransportError) -> bool:
    """Whether a failed `BfcpClient.connect` means the server could not be reached at all
    (refused, timed out, no route), as opposed to reached and then the TLS handshake failing.

    `connect` raises `TransportError(...) from None`; the socket error stays in `__context__`.
    """
    cause = exc.__context__
    reached = ssl.SSLError | ConnectionResetError | ConnectionAbortedError | BrokenPipeError
    if cause is None or isinstance(cause, reached):
        return False
    return isinstance(cause, OSError | TimeoutError)


class FloorRun:
    def __init__(self, conf: ConferenceRun) -> None:
        self.conf = conf
        self.sessions: dict[str, FloorSession] = {}
        self.fuzz_probes: list[FuzzProbe] = []
        self.fuzz_baseline: str | None = None
        """What the well-formed Hello before the malformed messages got: 'HelloAck' when the
        server was serving, else the answer's primitive, 'closed', 'silent', 'unreachable' or
        'no connection'."""
        self.fuzz_ended: float | None = None
        """Suite-loop time the last malformed message was judged."""
        self.last_answer: Received | None = None
        """The answer to the last single request a step sent (None: the server closed)."""
        self.last_claimed: str | None = None
        """Whose user id that request claimed, when it was another participant's."""
        self._clients: list[BfcpClient] = []

    def _run(self, coro, what: str):  # type: ignore[no-untyped-def]
        t = self.conf.target.timeouts
        return self.conf.runtime.run(coro, t.transaction * 3 + t.connect, what)

    def others(self, name: str) -> list[FloorSession]:
        """The scenario's other floor sessions: the candidates for a positive control."""
        return [s for n, s in self.sessions.items() if n != name]

    def session(self, name: str) -> FloorSession:
        try:
            return self.sessions[name]
        except KeyError:
            raise Inconclusive(
                f"{name} has no floor control session (an earlier step failed)"
            ) from None

    # -- sync face -----------------------------------------------------------------------------

    def join(self, name: str, proto: str = SECURE, *, cert_of: str | None = None) -> FloorSession:
        """INVITE the conference with a secure audio offer plus a BFCP m-line over `proto`,
        whose a=fingerprint names `cert_of`'s certificate (a probe) instead of `name`'s own."""
        if self.conf.conference_uri is None:
            raise Inconclusive(f"{name} cannot join: no conference was created")
        s = self._run(self._join(name, proto, cert_of or name), "INVITE with BFCP")
        self.sessions[name] = s
        return s

    def connect(self, name: str) -> FloorSession:
        s = self.session(name)
        self._run(self._connect(s), "opening the BFCP connection")
        return s

    def hello(self, name: str) -> Received | None:
        s = self.session(name)
        return self._run(self._reopen_and_send(s, b.Primitive.HELLO), "BFCP Hello")

    def request_floor(self, name: str, *, as_user: str | None = None) -> Received | None:
        """A FloorRequest from `name`, under `as_user`'s user id when given (a probe)."""
        s = self.session(name)
        user_id = None
        if as_user is not None:
            other = self.session(as_user).answer
            if other is None:
                raise Inconclusive(
                    f"{as_user} has no BFCP user id: the answer declined floor control"
                )
            user_id = other.user_id
        floor = s.answer.floor_id if s.answer else 1
        self.last_claimed = as_user
        self.last_answer = self._run(
            self._reopen_and_send(
                s, b.Primitive.FLOOR_REQUEST, b.BfcpFloorId(floor_id=floor), user_id=user_id
            ),
            "BFCP FloorRequest",
        )
        return self.last_answer

    def request_and_release(self, name: str) -> FloorSession:
        """Hello, FloorRequest and FloorRelease under `name`'s own user id (`FloorCycle`)."""
        s = self.session(name)
        self._run(self._request_and_release(s), "BFCP floor request and release")
        return s

    def send_malformed(self, name: str, count: int, seed: int = 8855) -> list[FuzzProbe]:
        """A well-formed Hello (the baseline), then `count` malformed messages."""
        s = self.session(name)
        self.fuzz_probes = self._run(self._fuzz(s, count, seed), "malformed BFCP")
        return self.fuzz_probes

    def connections(self) -> list[BfcpClient]:
        """Every BFCP connection this run opened, closed ones too: each keeps in `received`
        what the server sent on it (what a search for leaked keys reads)."""
        return list(self._clients)

    def close(self) -> None:
        async def _close() -> None:
            for c in self._clients:
                await c.close()

        try:
            self.conf.runtime.run(_close(), 10, "closing BFCP connections")
        except Exception:
            pass

    # -- async work ----------------------------------------------------------------------------

    async def _join(self, name: str, proto: str, cert_of: str) -> FloorSession:
        target = self.conf.target
        cert = target.account(cert_of).client_cert
        bfcp_m = floor_offer_line(cert, proto)
        out = await self.conf.join_async(name, OfferSpec(), extra_media=[bfcp_m])
        session = FloorSession(name, out)
        session.offered_fingerprint = fingerprint_sha256(cert).upper() if cert else None
        if out.answer is not None:
            for m in out.answer.media:
                if m.media == "application":
                    session.answer = FloorAnswer(
                        m.connection_address or out.answer.connection_address or target.host,
                        m.port,
                        m.proto,
                        {n: v or "" for n, v in m.attributes},
                    )
        return session

    async def _connect(self, s: FloorSession) -> None:
        target = self.conf.target
        a = s.answer
        if a is None or a.port == 0:
            s.connect_error = "the answer has no BFCP stream to connect to"
            return
        secure = a.proto.upper() == SECURE
        ctx = (
            client_ssl_context(target, target.account(s.name), self.conf.keylog) if secure else None
        )
        try:
            s.client = await BfcpClient.connect(
                a.host,
                a.port,
                ssl_context=ctx,
                server_hostname=target.domain,
                timeout=target.timeouts.connect,
            )
        except TransportError as exc:
            s.client = None
            s.connect_error = str(exc)
            s.unreachable = unreachable(exc)
            return
        s.connect_error, s.unreachable = None, False
        self._clients.append(s.client)

    async def _reopen(self, s: FloorSession) -> None:
        """Open a connection unless one is open: a close before a message is sent must not be
        counted as the server's answer to it."""
        if s.client is None or s.client.closed.is_set():
            s.client = None
            await self._connect(s)

    def _message(
        self,
        s: FloorSession,
        primitive: b.Primitive,
        *attrs: b.BfcpAttribute,
        user_id: int | None = None,
    ) -> Bfcp:
        a = s.answer
        if a is None:
            raise Inconclusive(f"{s.name} has no BFCP user id: the answer declined floor control")
        return Bfcp(
            primitive=primitive,
            conference_id=a.conference_id,
            transaction_id=s.next_txn(),
            user_id=a.user_id if user_id is None else user_id,
            attributes=list(attrs),
        )

    async def _send(
        self,
        s: FloorSession,
        primitive: b.Primitive,
        *attrs: b.BfcpAttribute,
        user_id: int | None = None,
    ) -> Received | None:
        client = s.client
        if client is None:
            no_connection(s)
        msg = self._message(s, primitive, *attrs, user_id=user_id)
        try:
            got = await client.transact(msg, self.conf.target.timeouts.transaction)
        except PeerTimeout:
            s.exchanges.append((msg.primitive_name, None))
            raise
        s.exchanges.append((msg.primitive_name, got))
        return got

    async def _reopen_and_send(
        self,
        s: FloorSession,
        primitive: b.Primitive,
        *attrs: b.BfcpAttribute,
        user_id: int | None = None,
    ) -> Received | None:
        await self._reopen(s)
        return await self._send(s, primitive, *attrs, user_id=user_id)

    async def _request_and_release(self, s: FloorSession) -> None:
        cycle = FloorCycle(started=asyncio.get_running_loop().time())
        s.cycle = cycle
        await self._reopen(s)
        if s.client is None:
            return
        cycle.connected, cycle.tls = True, s.client.peer is not None
        floor = s.answer.floor_id if s.answer else 1
        hello = await self._step(s, cycle, "Hello", b.Primitive.HELLO)
        if hello is None or hello.message.primitive != b.Primitive.HELLO_ACK:
            return
        rid = _request_id(
            await self._step(
                s, cycle, "FloorRequest", b.Primitive.FLOOR_REQUEST, b.BfcpFloorId(floor_id=floor)
            )
        )
        if rid is not None:
            await self._step(
                s,
                cycle,
                "FloorRelease",
                b.Primitive.FLOOR_RELEASE,
                b.BfcpFloorRequestId(floor_request_id=rid),
            )

    async def _step(
        self,
        s: FloorSession,
        cycle: FloorCycle,
        name: str,
        primitive: b.Primitive,
        *attrs: b.BfcpAttribute,
    ) -> Received | None:
        """One exchange of a cycle; silence is recorded (and ends the cycle), not raised."""
        if cycle.silent is not None:
            return None
        try:
            got = await self._send(s, primitive, *attrs)
        except PeerTimeout:
            cycle.silent = name
            return None
        cycle.answers[name] = got
        return got

    async def _fuzz(self, s: FloorSession, count: int, seed: int) -> list[FuzzProbe]:
        samples = malformed_samples(count, seed)
        timeout = self.conf.target.timeouts.transaction
        loop = asyncio.get_running_loop()
        self.fuzz_baseline = await self._baseline(s)
        probes: list[FuzzProbe] = []
        # After silence or a server that no longer takes connections, the rest is not sent:
        # waiting out a deadline per probe would add nothing but time.
        stopped = self.fuzz_baseline in ("silent", "unreachable", "no connection")
        for raw in samples:
            if not stopped:
                await self._reopen(s)
                stopped = s.client is None
            if stopped or s.client is None:
                probes.append(FuzzProbe(raw, "unsent"))
                continue
            try:
                got = await s.client.transact(raw, timeout)
            except PeerTimeout:
                probes.append(FuzzProbe(raw, "silent"))
                stopped = True
                continue
            if got is None:
                probes.append(FuzzProbe(raw, "closed"))
            else:
                kind = "error" if got.message.primitive == b.Primitive.ERROR else "answered"
                probes.append(FuzzProbe(raw, kind, got.message.primitive_name))
        self.fuzz_ended = loop.time()
        return probes

    async def _baseline(self, s: FloorSession) -> str:
        """A well-formed Hello before the probes: is the server serving on this connection?"""
        await self._reopen(s)
        if s.client is None:
            return "unreachable" if s.unreachable else "no connection"
        try:
            got = await self._send(s, b.Primitive.HELLO)
        except PeerTimeout:
            return "silent"
        return "closed" if got is None else got.message.primitive_name


def _request_id(got: Received | None) -> int | None:
    if got is None or got.message.primitive != b.Primitive.FLOOR_REQUEST_STATUS:
        return None
    fri = got.message.attr(b.BfcpFloorRequestInformation)
    return fri.floor_request_id if fri is not None else None


def request_statuses(got: Received | None) -> list[int]:
    if got is None:
        return []
    out = []
    for a in got.message.attributes:
        if a.type == b.AttributeType.FLOOR_REQUEST_INFORMATION:
            for inner in a.attributes:
                if inner.type == b.AttributeType.OVERALL_REQUEST_STATUS:
                    out += [
                        x.request_status
                        for x in inner.attributes
                        if x.type == b.AttributeType.REQUEST_STATUS
                    ]
    return out


def describe_answer(got: Received) -> str:
    """'FloorRequestStatus [3]', 'Error', ...: an answer in a reason."""
    return f"{got.message.primitive_name} {request_statuses(got) or ''}".rstrip()


def no_connection(s: FloorSession) -> NoReturn:
    """Why there is no floor control connection to judge: an unreachable server is the
    environment (error), a connection never opened is inconclusive."""
    if s.unreachable:
        raise TargetUnreachable(f"cannot reach the floor control server: {s.connect_error}")
    raise Inconclusive(
        f"{s.name} has no floor control connection: {s.connect_error or 'it was never opened'}"
    )
