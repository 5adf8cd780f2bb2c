"""Floor control as the suite drives it (R8, O5): BFCP negotiated in SDP, then spoken over TLS.

`FloorRun` is the per-scenario face the steps talk to. It adds an `m=application ...
TCP/TLS/BFCP *` line (RFC 8856: a=setup:active, a=connection:new, a=floorctrl:c-only and the
fingerprint of the participant's own certificate) to a participant's normal secure offer, reads
a=confid, a=userid, a=floorid and a=fingerprint from the answer, and opens the BFCP connection
with `confsec.net.bfcp.BfcpClient`. Every exchange runs on the conference's suite loop with the
target's deadlines; the observations are kept, and the check functions at the bottom judge them
without touching the network. Each check returns the `Evidence` it judged (issue 12: no pass
without an observation), and each negative check carries its positive control: a refusal counts
only where the same server, on the same kind of connection, granted an honest request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from scapy.packet import fuzz

from confsec.behaviour.conference import CallOutcome, ConferenceRun, OfferSpec
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp, BfcpParseError, parse_bfcp
from confsec.codec.sdp import MediaDescription, parse_sdp
from confsec.errors import (
    Inconclusive,
    NonConformance,
    PeerTimeout,
    TargetUnreachable,
    TlsVerificationError,
    TransportError,
)
from confsec.net.bfcp import BfcpClient, Received
from confsec.net.startup import client_ssl_context
from confsec.observed import Evidence
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

    def join(self, name: str, proto: str = SECURE) -> FloorSession:
        """INVITE the conference with a secure audio offer plus a BFCP m-line over `proto`."""
        if self.conf.conference_uri is None:
            raise Inconclusive(f"{name} cannot join: no conference was created")
        s = self._run(self._join(name, proto), "INVITE with BFCP")
        self.sessions[name] = s
        return s

    def connect(self, name: str) -> FloorSession:
        s = self.session(name)
        self._run(self._connect(s), "opening the BFCP connection")
        return s

    def hello(self, name: str) -> Received | None:
        s = self.session(name)
        return self._run(self._reopen_and_send(s, 11), "BFCP Hello")

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
            self._reopen_and_send(s, 1, b.BfcpFloorId(floor_id=floor), user_id=user_id),
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

    def close(self) -> None:
        async def _close() -> None:
            for c in self._clients:
                await c.close()

        try:
            self.conf.runtime.run(_close(), 10, "closing BFCP connections")
        except Exception:
            pass

    # -- async work ----------------------------------------------------------------------------

    async def _join(self, name: str, proto: str) -> FloorSession:
        conf = self.conf
        target = conf.target
        # The participant machinery of ConferenceRun, reused so the media legs, keys and ledger
        # stay the same as for every other join; only the offer gains the BFCP m-line.
        p = await conf._participant(name, "valid")
        offer = parse_sdp(await p.build_offer(OfferSpec()))
        bfcp_m = floor_offer_line(target.account(name).client_cert, proto)
        sdp = dataclasses.replace(offer, media=(*offer.media, bfcp_m)).to_bytes()
        uri = conf.conference_uri or ""
        out = CallOutcome(name, uri)
        try:
            call = await p.ua.invite(
                uri, sdp, dest=target.dest, timeout=target.timeouts.transaction
            )
        except (PeerTimeout, TransportError, TlsVerificationError) as exc:
            out.error = f"no answer: {exc}"
        else:
            conf._record(out, call.response)
            if out.status is not None and 200 <= out.status < 300 and out.answer is not None:
                p.apply_answer(out.answer)
        conf.outcomes[name] = out
        conf.last_outcome = out
        if out.status is None or not 200 <= out.status < 300:
            await p.close_media()
        session = FloorSession(name, out)
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
        self, s: FloorSession, primitive: int, *attrs: b.BfcpAttribute, user_id: int | None = None
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
        self, s: FloorSession, primitive: int, *attrs: b.BfcpAttribute, user_id: int | None = None
    ) -> Received | None:
        client = s.client
        if client is None:
            _no_connection(s)
        msg = self._message(s, primitive, *attrs, user_id=user_id)
        try:
            got = await client.transact(msg, self.conf.target.timeouts.transaction)
        except PeerTimeout:
            s.exchanges.append((msg.primitive_name, None))
            raise
        s.exchanges.append((msg.primitive_name, got))
        return got

    async def _reopen_and_send(
        self, s: FloorSession, primitive: int, *attrs: b.BfcpAttribute, user_id: int | None = None
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
        hello = await self._step(s, cycle, "Hello", 11)
        if hello is None or hello.message.primitive != 12:
            return
        rid = _request_id(
            await self._step(s, cycle, "FloorRequest", 1, b.BfcpFloorId(floor_id=floor))
        )
        if rid is not None:
            await self._step(
                s, cycle, "FloorRelease", 2, b.BfcpFloorRequestId(floor_request_id=rid)
            )

    async def _step(
        self, s: FloorSession, cycle: FloorCycle, name: str, primitive: int, *attrs: b.BfcpAttribute
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
                kind = "error" if got.message.primitive == 13 else "answered"
                probes.append(FuzzProbe(raw, kind, got.message.primitive_name))
        self.fuzz_ended = loop.time()
        return probes

    async def _baseline(self, s: FloorSession) -> str:
        """A well-formed Hello before the probes: is the server serving on this connection?"""
        await self._reopen(s)
        if s.client is None:
            return "unreachable" if s.unreachable else "no connection"
        try:
            got = await self._send(s, 11)
        except PeerTimeout:
            return "silent"
        return "closed" if got is None else got.message.primitive_name


def malformed_samples(count: int, seed: int) -> list[bytes]:
    """`count` fuzzed messages that our strict decoder (`parse_bfcp`) refuses, from `seed`.

    About one `fuzz()` output in forty is well-formed after all; an answer other than an Error
    to one of those would be right, so they are not sent as malformed."""
    rng_state = random.getstate()
    random.seed(seed)
    out: list[bytes] = []
    try:
        for _ in range(count * 20):
            if len(out) == count:
                break
            raw = _malformed()
            try:
                parse_bfcp(raw)
            except BfcpParseError:
                out.append(raw)
    finally:
        random.setstate(rng_state)
    return out


def _malformed() -> bytes:
    """A fuzzed message (scapy `fuzz()` on our layers) that still frames on a stream: the
    Payload Length is set to what was sent, so the server has a whole message to judge."""
    template = Bfcp(
        primitive=1,
        attributes=[
            b.BfcpFloorId(floor_id=1),
            b.BfcpFloorRequestInformation(
                floor_request_id=1,
                attributes=[b.BfcpOverallRequestStatus(attributes=[b.BfcpRequestStatus()])],
            ),
            b.BfcpParticipantProvidedInfo(text=b"fuzz"),
        ],
    )
    raw = bytearray(bytes(fuzz(template)))
    header = b.HEADER_LEN + (4 if raw[0] & 0x08 else 0)
    raw += bytes((-(len(raw) - header)) % 4)
    raw[2:4] = ((len(raw) - header) // 4).to_bytes(2, "big")
    return bytes(raw)


def _request_id(got: Received | None) -> int | None:
    if got is None or got.message.primitive != 4:
        return None
    fri = got.message.attr(b.BfcpFloorRequestInformation)
    return fri.floor_request_id if fri is not None else None


def _statuses(got: Received | None) -> list[int]:
    if got is None:
        return []
    out = []
    for a in got.message.attributes:
        if a.type == 15:
            for inner in a.attributes:
                if inner.type == 18:
                    out += [x.request_status for x in inner.attributes if x.type == 5]
    return out


def _answered(got: Received) -> str:
    """'FloorRequestStatus [3]', 'Error', ...: an answer in a reason."""
    return f"{got.message.primitive_name} {_statuses(got) or ''}".rstrip()


# -- checks ------------------------------------------------------------------------------------
#
# One rule for a server the suite could not observe: no observation is inconclusive; a server
# that could not be reached at all (connection refused or timed out) is an error of the
# environment (`TargetUnreachable`), never a fail, except where the suite saw it serve first
# and then saw it gone (`still_serving`): that it stopped is the observation.


def _no_connection(s: FloorSession) -> NoReturn:
    if s.unreachable:
        raise TargetUnreachable(f"cannot reach the floor control server: {s.connect_error}")
    raise Inconclusive(
        f"{s.name} has no floor control connection: {s.connect_error or 'it was never opened'}"
    )


def _admitted(s: FloorSession) -> None:
    out = s.outcome
    if out.error is not None:
        raise Inconclusive(f"{s.name}'s INVITE: {out.error}")
    if out.status is None or not 200 <= out.status < 300:
        raise Inconclusive(f"{s.name} was not admitted ({out.status} {out.reason})")


def answer_secure(s: FloorSession) -> Evidence:
    """R8 / RFC 8856: the accepted BFCP stream is TCP/TLS/BFCP with everything it needs."""
    _admitted(s)
    a = s.answer
    if a is None or a.port == 0:
        raise Inconclusive(f"the answer to {s.name} declines floor control: nothing to judge")
    if a.proto.upper() != SECURE:
        raise NonConformance(f"the answer carries BFCP over {a.proto}, not {SECURE}")
    if a.fingerprint is None:
        raise NonConformance("the BFCP answer has no a=fingerprint to authenticate the server")
    needed = ("confid", "userid", "floorid", "setup", "floorctrl")
    missing = [n for n in needed if not a.attributes.get(n)]
    if missing:
        raise NonConformance(f"the BFCP answer lacks a={', a='.join(missing)}")
    if a.attributes["setup"] not in ("passive", "actpass"):
        raise NonConformance(f"a=setup:{a.attributes['setup']} answers our a=setup:active")
    return Evidence.of(bfcp_answers_judged=1, bfcp_answer_attributes_present=len(needed) + 1)


def plain_refused(s: FloorSession, controls: Sequence[FloorSession] = ()) -> Evidence:
    """R8: a TCP/BFCP offer gets no floor control in the clear (488, or the m-line at port 0).

    Accepting it is a finding on its own. The refusal counts only beside the positive control:
    another participant's TCP/TLS/BFCP offer to the same conference was accepted, so the focus
    does grant floor control and refused this offer for being plain.
    """
    out = s.outcome
    if out.error is not None:
        raise Inconclusive(f"{s.name}'s INVITE: {out.error}")
    if out.status is None:
        raise Inconclusive(f"{s.name}'s INVITE got no final answer: nothing to judge")
    if not 200 <= out.status < 300:
        if out.status not in (488, 606):
            raise Inconclusive(f"refused with {out.status} {out.reason}: may have another cause")
        seen = Evidence.of(plain_bfcp_offers_refused=1)
    else:
        a = s.answer
        if a is not None and a.port != 0:
            raise NonConformance(
                f"the focus accepted BFCP over {a.proto} in the clear (port {a.port})"
            )
        seen = Evidence.of(plain_bfcp_streams_declined=1)
    why = "no TCP/TLS/BFCP offer was made in this scenario"
    for c in controls:
        try:
            answer_secure(c)
        except (NonConformance, Inconclusive) as exc:
            why = f"{c.name}: {exc}"
            continue
        return seen + Evidence.of(
            f"{c.name}'s TCP/TLS/BFCP offer to the same conference was accepted"
        )
    raise Inconclusive(
        f"the positive control failed ({why}): refusing {s.name}'s plain offer shows nothing "
        "unless a secure one is accepted"
    )


def fingerprint_matches(s: FloorSession) -> Evidence:
    """RFC 8856 / R8: the certificate on the BFCP TLS connection is the one a=fingerprint names."""
    seen = answer_secure(s)
    if s.client is None:
        _no_connection(s)
    if s.client.peer is None:
        raise NonConformance("the BFCP connection presented no certificate")
    algo, advertised = s.answer.fingerprint  # type: ignore[union-attr, misc]
    if algo != "SHA-256":
        raise Inconclusive(f"a=fingerprint uses {algo}; the suite checks SHA-256")
    presented = s.client.peer.fingerprint_sha256.upper()
    if presented != advertised:
        raise NonConformance(
            f"the floor server presents a certificate with SHA-256 {presented}, but the answer's "
            f"a=fingerprint is {advertised}"
        )
    return seen + Evidence.of(bfcp_tls_connections=1, certificates_compared=1)


def hello_answered(got: Received | None) -> Evidence:
    if got is None:
        raise Inconclusive("the floor server closed the connection on Hello")
    if got.message.primitive != 12:
        raise Inconclusive(f"Hello was answered with {got.message.primitive_name}, not HelloAck")
    return Evidence.of(hellos_answered=1)


def _judge_cycle(s: FloorSession, *, hung: type[Exception]) -> Evidence:
    """A connected cycle: HelloAck, the floor granted, its release confirmed, all over TLS.

    A close is a finding (the server took floor control in SDP and will not do it); a request
    not granted is inconclusive (the floor may be held, or policy may differ); silence is
    `hung` (inconclusive for a plain grant check, a finding where the server answered before).
    """
    c = s.cycle
    if c is None:
        raise Inconclusive(f"{s.name} never requested the floor")
    for step in ("Hello", "FloorRequest", "FloorRelease"):
        if c.silent == step:
            raise hung(f"{s.name}'s {step} got no answer before the deadline")
        if step not in c.answers:
            raise Inconclusive(f"{s.name}'s {step} was never sent")  # an earlier step stopped
        got = c.answers[step]
        if got is None:
            raise NonConformance(f"the floor control server closed {s.name}'s connection on {step}")
        if step == "Hello" and got.message.primitive != 12:
            raise NonConformance(
                f"{s.name}'s Hello was answered with {_answered(got)}, not HelloAck"
            )
        if step == "FloorRequest" and 3 not in _statuses(got):
            raise Inconclusive(f"{s.name}'s floor request was not granted ({_answered(got)})")
        if step == "FloorRelease" and 6 not in _statuses(got):
            raise NonConformance(f"{s.name}'s floor release was not confirmed ({_answered(got)})")
    if not c.tls:
        raise NonConformance(f"{s.name}'s floor control exchange did not run over TLS")
    return Evidence.of(bfcp_exchanges_answered=len(c.answers), floor_grants=1, floor_releases=1)


def granted_and_released(s: FloorSession) -> Evidence:
    """O5/R8: floor control works while secure: granted, then released, over TLS."""
    c = s.cycle
    if c is None or not c.connected:
        if c is None and s.client is not None:
            raise Inconclusive(f"{s.name} never requested the floor (an earlier step failed)")
        _no_connection(s)
    return _judge_cycle(s, hung=Inconclusive)


def _control_failure(control: FloorSession | None) -> str | None:
    """Why `control`'s own request-and-release does not stand as a positive control, or None."""
    if control is None or control.cycle is None:
        return "no request under the participant's own user id was made"
    if not control.cycle.connected:
        return f"no connection: {control.connect_error}"
    try:
        _judge_cycle(control, hung=Inconclusive)
    except (NonConformance, Inconclusive) as exc:
        return str(exc)
    return None


def foreign_request_refused(
    got: Received | None, name: str, other: str, control: FloorSession | None = None
) -> Evidence:
    """R8/O5: a request carrying another participant's user id ends in an Error (or a close).

    Accepting it is a finding on its own. Refusing it counts only beside the positive control:
    `name`'s request under its own user id, on the same kind of connection (TLS with its own
    certificate), was granted and released; a server that refuses everything proves nothing.
    """
    if got is not None and got.message.primitive != 13:
        raise NonConformance(
            f"the floor server answered {name}'s request for {other}'s user id with "
            f"{_answered(got)}"
        )
    why = _control_failure(control)
    if why is not None:
        raise Inconclusive(
            f"the positive control failed ({why}): an Error or a close for {other}'s user id "
            f"shows nothing unless {name}'s own request is granted on such a connection"
        )
    return Evidence.of(
        f"{name}'s floor request under its own user id was granted and released over TLS",
        requests_for_another_user_id=1,
        refused_with_an_Error=int(got is not None),
        refused_with_a_close=int(got is None),
    )


def malformed_handled(probes: Sequence[FuzzProbe], baseline: str | None = None) -> Evidence:
    """Each malformed message that reached the server gets an Error or a close.

    Another answer is a finding, and so is silence (a hang). A probe that never reached the
    server is not evidence either way. `baseline` is what a well-formed Hello got just before
    the probes: unless it was a HelloAck, an Error to a malformed message shows nothing (a
    server that answers everything with an Error would pass).
    """
    if not probes:
        raise Inconclusive("no malformed message was sent")
    delivered = [p for p in probes if p.delivered]
    answered = [p for p in delivered if p.result == "answered"]
    if answered:
        first = answered[0]
        raise NonConformance(
            f"{len(answered)} of {len(delivered)} malformed BFCP messages were answered with "
            f"{first.answer or 'a message'}, not an Error (first: {first.sent[:24].hex()})"
        )
    silent = [p for p in delivered if p.result == "silent"]
    if silent:
        raise NonConformance(
            f"{len(silent)} of {len(delivered)} malformed BFCP messages got neither an Error nor a "
            f"close (first: {silent[0].sent[:24].hex()})"
        )
    if not delivered:
        if baseline == "unreachable":
            raise TargetUnreachable(
                f"the floor control server could not be reached: none of the {len(probes)} "
                "malformed messages was sent"
            )
        raise Inconclusive(
            f"none of the {len(probes)} malformed messages reached the server: nothing to judge"
        )
    if baseline != "HelloAck":
        raise Inconclusive(
            f"a well-formed Hello before the malformed messages got {baseline or 'nothing'}, not "
            "HelloAck: an Error proves nothing from a server that does not serve a valid request"
        )
    return Evidence.of(
        BASELINE_CONTROL,
        malformed_messages_delivered=len(delivered),
        Errors=sum(p.result == "error" for p in delivered),
        closes=sum(p.result == "closed" for p in delivered),
        malformed_messages_not_delivered=len(probes) - len(delivered),
    )


def still_serving(s: FloorSession, baseline: str | None, probes_ended: float | None) -> Evidence:
    """After malformed input, the server still grants another participant the floor.

    Judged on `s`'s request-and-release made after the probes ended, against the baseline (a
    HelloAck to a well-formed Hello just before them). Here, and only here, a server that cannot
    be reached is a finding: the suite saw it serve before the probes and gone after them.
    """
    if baseline != "HelloAck":
        raise Inconclusive(
            f"the server was not seen serving before the malformed messages (a well-formed Hello "
            f"got {baseline or 'nothing'}): whether it stopped cannot be told"
        )
    c = s.cycle
    if c is None or probes_ended is None or c.started < probes_ended:
        raise Inconclusive(f"{s.name}'s floor request did not come after the malformed messages")
    if not c.connected:
        if s.unreachable:
            raise NonConformance(
                f"the floor control server stopped serving: it answered a Hello before the "
                f"malformed messages and refused {s.name}'s connection after them "
                f"({s.connect_error})"
            )
        raise Inconclusive(f"{s.name} has no floor control connection: {s.connect_error}")
    try:
        seen = _judge_cycle(s, hung=NonConformance)
    except NonConformance as exc:
        raise NonConformance(
            f"the floor control server stopped serving after the malformed messages: {exc}"
        ) from None
    return seen + Evidence.of(
        BASELINE_CONTROL, f"{s.name}'s request came after the malformed messages"
    )
