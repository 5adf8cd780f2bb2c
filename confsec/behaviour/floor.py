"""Floor control as the suite drives it (R8, O5): BFCP negotiated in SDP, then spoken over TLS.

`FloorRun` is the per-scenario face the steps talk to. It adds an `m=application ...
TCP/TLS/BFCP *` line (RFC 8856: a=setup:active, a=connection:new, a=floorctrl:c-only and the
fingerprint of the participant's own certificate) to a participant's normal secure offer, reads
a=confid, a=userid, a=floorid and a=fingerprint from the answer, and opens the BFCP connection
with `confsec.net.bfcp.BfcpClient`. Every exchange runs on the conference's suite loop with the
target's deadlines; the observations are kept, and the check functions at the bottom judge them
without touching the network.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path

from scapy.packet import fuzz

from confsec.behaviour.conference import CallOutcome, ConferenceRun, OfferSpec
from confsec.behaviour.participant import client_ssl_context
from confsec.codec import bfcp as b
from confsec.codec.bfcp import Bfcp
from confsec.codec.sdp import MediaDescription, parse_sdp
from confsec.errors import PeerTimeout, TargetUnreachable, TlsVerificationError, TransportError
from confsec.net.bfcp import BfcpClient, Received
from confsec.pki import fingerprint_sha256
from confsec.report.verdicts import Inconclusive, NonConformance

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
class FloorSession:
    """One participant's floor control: what SDP said, the connection, what was exchanged."""

    name: str
    outcome: CallOutcome
    answer: FloorAnswer | None = None
    client: BfcpClient | None = None
    connect_error: str | None = None
    exchanges: list[tuple[str, Received | None]] = field(default_factory=list)
    """(what was sent, the answer or None when the server closed the connection)."""
    _txn: int = 0

    def next_txn(self) -> int:
        self._txn += 1
        return self._txn


@dataclass
class FuzzProbe:
    """What became of one malformed message."""

    sent: bytes
    result: str
    """'error', 'answered' (another message), 'closed', 'silent' or 'refused' (no connection)."""


class FloorRun:
    def __init__(self, conf: ConferenceRun) -> None:
        self.conf = conf
        self.sessions: dict[str, FloorSession] = {}
        self.fuzz_probes: list[FuzzProbe] = []
        self.last_answer: Received | None = None
        """The answer to the last single request a step sent (None: the server closed)."""
        self._clients: list[BfcpClient] = []

    def _run(self, coro, what: str):  # type: ignore[no-untyped-def]
        t = self.conf.target.timeouts
        return self.conf.runtime.run(coro, t.transaction * 3 + t.connect, what)

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
        return self._run(self._send(s, 11), "BFCP Hello")

    def request_floor(self, name: str, *, as_user: str | None = None) -> Received | None:
        s = self.session(name)
        user_id = self.session(as_user).answer.user_id if as_user else None  # type: ignore[union-attr]
        self.last_answer = self._run(self._request(s, user_id), "BFCP FloorRequest")
        return self.last_answer

    def request_and_release(self, name: str) -> FloorSession:
        s = self.session(name)
        self._run(self._request_and_release(s), "BFCP floor request and release")
        return s

    def send_malformed(self, name: str, count: int, seed: int = 8855) -> list[FuzzProbe]:
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
            s.connect_error = str(exc)
            return
        self._clients.append(s.client)

    def _message(
        self, s: FloorSession, primitive: int, *attrs: b.BfcpAttribute, user_id: int | None = None
    ) -> Bfcp:
        a = s.answer
        assert a is not None
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
        if s.client is None:
            raise Inconclusive(f"{s.name} has no BFCP connection: {s.connect_error}")
        msg = self._message(s, primitive, *attrs, user_id=user_id)
        try:
            got = await s.client.transact(msg, self.conf.target.timeouts.transaction)
        except PeerTimeout:
            s.exchanges.append((msg.primitive_name, None))
            raise
        s.exchanges.append((msg.primitive_name, got))
        return got

    async def _request(self, s: FloorSession, user_id: int | None) -> Received | None:
        floor = s.answer.floor_id if s.answer else 1
        return await self._send(s, 1, b.BfcpFloorId(floor_id=floor), user_id=user_id)

    async def _request_and_release(self, s: FloorSession) -> None:
        if s.client is None:
            await self._connect(s)
        if s.client is None:
            return
        hello = await self._send(s, 11)
        if hello is None or hello.message.primitive != 12:
            return
        got = await self._request(s, None)
        rid = _request_id(got)
        if rid is None:
            return
        await self._send(s, 2, b.BfcpFloorRequestId(floor_request_id=rid))

    async def _fuzz(self, s: FloorSession, count: int, seed: int) -> list[FuzzProbe]:
        rng_state = random.getstate()
        random.seed(seed)
        try:
            samples = [_malformed(s) for _ in range(count)]
        finally:
            random.setstate(rng_state)
        probes = []
        timeout = self.conf.target.timeouts.transaction
        for raw in samples:
            if s.client is None or s.client.closed.is_set():
                s.client = None
                await self._connect(s)
            if s.client is None:
                probes.append(FuzzProbe(raw, "refused"))
                continue
            try:
                got = await s.client.transact(raw, timeout)
            except PeerTimeout:
                probes.append(FuzzProbe(raw, "silent"))
                continue
            if got is None:
                probes.append(FuzzProbe(raw, "closed"))
            else:
                probes.append(
                    FuzzProbe(raw, "error" if got.message.primitive == 13 else "answered")
                )
        return probes


def _malformed(s: FloorSession) -> bytes:
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


# -- checks ------------------------------------------------------------------------------------


def _admitted(s: FloorSession) -> None:
    out = s.outcome
    if out.error is not None:
        raise Inconclusive(f"{s.name}'s INVITE: {out.error}")
    if out.status is None or not 200 <= out.status < 300:
        raise Inconclusive(f"{s.name} was not admitted ({out.status} {out.reason})")


def answer_secure(s: FloorSession) -> None:
    """R8 / RFC 8856: the accepted BFCP stream is TCP/TLS/BFCP with everything it needs."""
    _admitted(s)
    a = s.answer
    if a is None or a.port == 0:
        raise Inconclusive(f"the answer to {s.name} declines floor control: nothing to judge")
    if a.proto.upper() != SECURE:
        raise NonConformance(f"the answer carries BFCP over {a.proto}, not {SECURE}")
    if a.fingerprint is None:
        raise NonConformance("the BFCP answer has no a=fingerprint to authenticate the server")
    missing = [
        n for n in ("confid", "userid", "floorid", "setup", "floorctrl") if not a.attributes.get(n)
    ]
    if missing:
        raise NonConformance(f"the BFCP answer lacks a={', a='.join(missing)}")
    if a.attributes["setup"] not in ("passive", "actpass"):
        raise NonConformance(f"a=setup:{a.attributes['setup']} answers our a=setup:active")


def plain_refused(s: FloorSession) -> None:
    """R8: a TCP/BFCP offer gets no floor control in the clear (488, or the m-line at port 0)."""
    out = s.outcome
    if out.error is not None:
        raise Inconclusive(f"{s.name}'s INVITE: {out.error}")
    assert out.status is not None
    if not 200 <= out.status < 300:
        if out.status in (488, 606):
            return
        raise Inconclusive(f"refused with {out.status} {out.reason}: may have another cause")
    a = s.answer
    if a is not None and a.port != 0:
        raise NonConformance(f"the focus accepted BFCP over {a.proto} in the clear (port {a.port})")


def fingerprint_matches(s: FloorSession) -> None:
    """RFC 8856 / R8: the certificate on the BFCP TLS connection is the one a=fingerprint names."""
    answer_secure(s)
    if s.client is None:
        raise TargetUnreachable(f"cannot open the BFCP TLS connection: {s.connect_error}")
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


def hello_answered(got: Received | None) -> None:
    if got is None:
        raise Inconclusive("the floor server closed the connection on Hello")
    if got.message.primitive != 12:
        raise Inconclusive(f"Hello was answered with {got.message.primitive_name}, not HelloAck")


def foreign_request_refused(got: Received | None, name: str, other: str) -> None:
    """R8: a request carrying another participant's user id ends in an Error (or a close)."""
    if got is None:
        return  # the server closed the connection: refused
    if got.message.primitive == 13:
        return
    raise NonConformance(
        f"the floor server answered {name}'s request for {other}'s user id with "
        f"{got.message.primitive_name} {_statuses(got) or ''}".rstrip()
    )


def granted_and_released(s: FloorSession) -> None:
    """O5/R8: floor control works while secure: granted, then released, over TLS."""
    if s.client is None:
        raise NonConformance(f"{s.name} cannot reach the floor control server: {s.connect_error}")
    steps = {sent: got for sent, got in s.exchanges}
    if "Hello" in steps and (steps["Hello"] is None or steps["Hello"].message.primitive != 12):
        raise NonConformance(f"{s.name}'s Hello was not answered with HelloAck")
    request = steps.get("FloorRequest")
    if request is None:
        raise NonConformance(f"{s.name}'s floor request got no answer")
    if 3 not in _statuses(request):
        raise Inconclusive(f"{s.name}'s floor request was not granted ({_statuses(request)})")
    release = steps.get("FloorRelease")
    if release is None or 6 not in _statuses(release):
        raise NonConformance(f"{s.name}'s floor release was not confirmed")
    if s.client.peer is None:
        raise NonConformance("the floor control exchange did not run over TLS")


def malformed_handled(probes: list[FuzzProbe]) -> None:
    """Each malformed message gets an Error or a close; silence is a hang."""
    if not probes:
        raise Inconclusive("no malformed message was sent")
    silent = [p for p in probes if p.result == "silent"]
    if silent:
        raise NonConformance(
            f"{len(silent)} of {len(probes)} malformed BFCP messages got neither an Error nor a "
            f"close (first: {silent[0].sent[:24].hex()})"
        )
