"""The floor control server of the reference deployment: BFCP over TLS (RFC 8855, RFC 8856), R8.

The focus negotiates the BFCP stream in SDP and hands each authenticated participant a BFCP user
id; this server then holds every connection to that binding:

- BFCP runs over TLS only: an offer of plain `TCP/BFCP` is refused with 488 (`check_offer`);
  `bfcp-plain-tcp` accepts it and opens a plain TCP listener instead.
- The answer's `a=fingerprint` is the certificate this server presents (`bfcp-fingerprint-
  mismatch` advertises another certificate's).
- A connection is bound at its first message, whatever its primitive, to the user whose offer's
  a=fingerprint names the client's TLS certificate (RFC 8122 5, RFC 8856: with a=setup:active
  the client is the TLS client and its offer names its certificate); a first message for another
  user id, or from a certificate its offer did not name, gets Error 5 (Unauthorized Operation).
  `bfcp-no-client-fingerprint-check` trusts the name in the certificate instead of comparing it
  with the offer; `bfcp-binds-on-hello` vets the certificate against every offer of the
  conference and binds the connection to whatever user id its first message claims.
- A later message that carries another user id than the binding also gets Error 5;
  `bfcp-foreign-user-id` accepts it.
- Malformed BFCP is answered with an Error (the code `parse_bfcp` names) and the connection
  stays usable; `bfcp-crash-on-malformed` takes the whole server down, as a crash would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from dataclasses import dataclass, field

from confsec.codec import bfcp as b
from confsec.codec.bfcp import (
    AttributeType,
    Bfcp,
    BfcpParseError,
    BfcpStream,
    ErrorCode,
    Primitive,
    RequestStatus,
    parse_bfcp,
)
from confsec.codec.sdp import MediaDescription, SessionDescription
from confsec.net.tls import peer_identity
from confsec.pki import fingerprint_sha256
from confsec.reference import leaky

log = logging.getLogger(__name__)

FLOOR_ID = 1
SECURE_PROTO = "TCP/TLS/BFCP"
PLAIN_PROTO = "TCP/BFCP"
SUPPORTED = (
    Primitive.FLOOR_REQUEST,
    Primitive.FLOOR_RELEASE,
    Primitive.FLOOR_REQUEST_QUERY,
    Primitive.FLOOR_REQUEST_STATUS,
    Primitive.FLOOR_QUERY,
    Primitive.FLOOR_STATUS,
    Primitive.HELLO,
    Primitive.HELLO_ACK,
    Primitive.ERROR,
    Primitive.FLOOR_REQUEST_STATUS_ACK,
    Primitive.FLOOR_STATUS_ACK,
    Primitive.GOODBYE,
    Primitive.GOODBYE_ACK,
)
SUPPORTED_ATTRIBUTES = (
    AttributeType.BENEFICIARY_ID,
    AttributeType.FLOOR_ID,
    AttributeType.FLOOR_REQUEST_ID,
    AttributeType.PRIORITY,
    AttributeType.REQUEST_STATUS,
    AttributeType.ERROR_CODE,
    AttributeType.ERROR_INFO,
    AttributeType.PARTICIPANT_PROVIDED_INFO,
    AttributeType.STATUS_INFO,
    AttributeType.SUPPORTED_ATTRIBUTES,
    AttributeType.SUPPORTED_PRIMITIVES,
    AttributeType.FLOOR_REQUEST_INFORMATION,
    AttributeType.FLOOR_REQUEST_STATUS,
    AttributeType.OVERALL_REQUEST_STATUS,
)
# What a client may send and get an answer to: the chair and user queries are not served.
_HANDLED = (
    Primitive.FLOOR_REQUEST,
    Primitive.FLOOR_RELEASE,
    Primitive.FLOOR_REQUEST_QUERY,
    Primitive.FLOOR_QUERY,
    Primitive.HELLO,
    Primitive.GOODBYE,
)


@dataclass
class Allocation:
    """A BFCP user id issued in an SDP answer to one authenticated SIP user."""

    conference_id: int
    user_id: int
    user: str
    client_fingerprint: str | None


@dataclass
class FloorRequest:
    request_id: int
    user_id: int
    conn: _Connection
    status: int = RequestStatus.PENDING


@dataclass
class _Floor:
    holder: FloorRequest | None = None
    queue: list[FloorRequest] = field(default_factory=list)
    watchers: set[_Connection] = field(default_factory=set)


class _Connection:
    def __init__(self, server: FloorServer, reader, writer, secure: bool) -> None:  # type: ignore[no-untyped-def]
        self.server = server
        self.reader = reader
        self.writer = writer
        self.secure = secure
        self.bound: Allocation | None = None
        sslobj = writer.get_extra_info("ssl_object")
        peer = peer_identity(sslobj) if sslobj is not None else None
        self.peer_fingerprint = peer.fingerprint_sha256.upper() if peer else None
        self.peer_name = peer.subject_cn if peer else None

    def send(self, msg: Bfcp) -> None:
        if not self.writer.is_closing():
            self.writer.write(bytes(msg))


class FloorServer:
    """BFCP floor control server: one floor (id 1) per conference."""

    def __init__(self, host: str, defects: frozenset[str]) -> None:
        self.host = host
        self.defects = defects
        self.port = 0
        self.plain_port = 0
        self.advertised_fingerprint = ""
        self.allocations: dict[tuple[int, int], Allocation] = {}
        self.conference_ids: dict[str, int] = {}
        self.floors: dict[int, _Floor] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._conns: set[_Connection] = set()
        self._next_request = 1
        self.crashed = False

    async def start(self, ctx: ssl.SSLContext, cert_pem: str, advertised_pem: str) -> None:
        """Listen on TLS (and on plain TCP only with `bfcp-plain-tcp`)."""
        self.advertised_fingerprint = fingerprint_sha256(advertised_pem)
        if fingerprint_sha256(cert_pem) != self.advertised_fingerprint:
            log.warning("floor server advertises a fingerprint that is not its certificate's")
        tls = await asyncio.start_server(
            lambda r, w: self._serve(r, w, secure=True), self.host, 0, ssl=ctx
        )
        self._servers.append(tls)
        self.port = tls.sockets[0].getsockname()[1]
        if "bfcp-plain-tcp" in self.defects:
            plain = await asyncio.start_server(
                lambda r, w: self._serve(r, w, secure=False), self.host, 0
            )
            self._servers.append(plain)
            self.plain_port = plain.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._conns):
            conn.writer.close()
        self._servers.clear()

    # -- SDP (RFC 8856), called by the focus ----------------------------------------------------

    def check_offer(self, offer: SessionDescription) -> str | None:
        """Why the offer must be refused (488), or None."""
        for m in offer.media:
            if m.media == "application" and m.port != 0 and m.proto.upper() == PLAIN_PROTO:
                if "bfcp-plain-tcp" not in self.defects:
                    return "BFCP is offered only over TLS (TCP/TLS/BFCP)"
        return None

    def answer(self, conference: str, user: str, m: MediaDescription) -> MediaDescription | None:
        """The answer m-line for a BFCP offer, None for anything else (rejected with port 0)."""
        proto = m.proto.upper()
        if m.media != "application" or proto not in (SECURE_PROTO, PLAIN_PROTO):
            return None
        secure = proto == SECURE_PROTO
        if not secure and "bfcp-plain-tcp" not in self.defects:
            return None
        conf_id = self.conference_ids.setdefault(conference, len(self.conference_ids) + 1)
        self.floors.setdefault(conf_id, _Floor())
        user_id = next(
            (
                a.user_id
                for a in self.allocations.values()
                if (a.conference_id, a.user) == (conf_id, user)
            ),
            len([a for a in self.allocations.values() if a.conference_id == conf_id]) + 1,
        )
        client_fp = _fingerprint_of(m)
        self.allocations[(conf_id, user_id)] = Allocation(conf_id, user_id, user, client_fp)
        attrs: list[tuple[str, str | None]] = [
            ("floorctrl", "s-only"),
            ("confid", str(conf_id)),
            ("userid", str(user_id)),
            ("floorid", f"{FLOOR_ID} mstrm:1"),
            ("setup", "passive"),
            ("connection", "new"),
        ]
        if secure:
            attrs.append(("fingerprint", f"SHA-256 {self.advertised_fingerprint}"))
        port = self.port if secure else self.plain_port
        return MediaDescription.build(
            "application", port=port, proto=m.proto, formats=["*"], attributes=attrs
        )

    # -- connections ---------------------------------------------------------------------------

    async def _serve(self, reader, writer, *, secure: bool) -> None:  # type: ignore[no-untyped-def]
        conn = _Connection(self, reader, writer, secure)
        self._conns.add(conn)
        stream = BfcpStream()
        try:
            while not self.crashed:
                data = await reader.read(65536)
                if not data:
                    break
                stream.feed(data)
                while True:
                    try:
                        raw = stream.next_message()
                    except BfcpParseError as exc:
                        conn.send(_error(0, 0, 0, exc.error_code, str(exc)))
                        return  # framing is lost: close
                    if raw is None:
                        break
                    try:
                        self._on_message(conn, raw)
                    except Exception:  # a bug here must cost one Error, not the connection
                        log.exception("floor server failed on a message")
                        conn.send(_error(0, 0, 0, ErrorCode.GENERIC_ERROR, "internal error"))
                    if self.crashed:
                        return
                await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.debug("BFCP connection ended: %s", exc)
        finally:
            self._forget(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _forget(self, conn: _Connection) -> None:
        self._conns.discard(conn)
        for conference_id, floor in self.floors.items():
            floor.watchers.discard(conn)
            floor.queue = [r for r in floor.queue if r.conn is not conn]
            if floor.holder is not None and floor.holder.conn is conn:
                # A holder whose connection is gone can never release the floor: release it
                # for them and grant the next request, or nobody would get the floor again.
                _grant_next(conference_id, floor)
                self._announce(conference_id, floor)

    def _on_message(self, conn: _Connection, raw: bytes) -> None:
        try:
            msg = parse_bfcp(raw)
        except BfcpParseError as exc:
            if "bfcp-crash-on-malformed" in self.defects:
                log.error("floor server crashed on malformed BFCP (defect switch)")
                self.crashed = True
                self._crash()
                return
            # Echo the ids from the fixed part of the header, read with struct: scapy would want
            # the fragment fields too when the F bit is set.
            conf_id, txn, user = struct.unpack_from("!IHH", raw.ljust(b.HEADER_LEN, b"\0"), 4)
            conn.send(_error(conf_id, txn, user, exc.error_code, str(exc)))
            return
        reply = self._dispatch(conn, msg)
        if reply is not None:
            conn.send(reply)

    def _crash(self) -> None:
        for server in self._servers:
            server.close()
        for c in list(self._conns):
            c.writer.transport.abort()

    def _bind(self, conn: _Connection, msg: Bfcp) -> Bfcp | None:
        """Bind the connection to the user its first message names, or refuse (an Error)."""
        alloc = self.allocations.get((msg.conference_id, msg.user_id))
        if conn.bound is None:
            if msg.conference_id not in self.floors:
                return _reply_error(msg, ErrorCode.CONFERENCE_DOES_NOT_EXIST, "no such conference")
            if alloc is None:
                return _reply_error(
                    msg, ErrorCode.USER_DOES_NOT_EXIST, "no such user in this conference"
                )
            why = self._not_its_certificate(conn, alloc) if conn.secure else None
            if why is not None:
                return _reply_error(msg, ErrorCode.UNAUTHORIZED_OPERATION, why)
            conn.bound = alloc
            return None
        if (msg.conference_id, msg.user_id) != (conn.bound.conference_id, conn.bound.user_id):
            if "bfcp-foreign-user-id" in self.defects and alloc is not None:
                return None
            return _reply_error(
                msg, ErrorCode.UNAUTHORIZED_OPERATION, "this connection belongs to another user id"
            )
        return None

    def _not_its_certificate(self, conn: _Connection, alloc: Allocation) -> str | None:
        """Why the TLS client may not act as `alloc`'s user, or None: its certificate must be
        the one that user's offer named (RFC 8122 5), and this holds for the first message too,
        or whoever opens a connection first could claim any user id."""
        if "floor-authorises-claimed-user" in self.defects:  # any CA certificate, any user id
            return None
        if "bfcp-no-client-fingerprint-check" in self.defects:  # trusts the certificate's name
            return None if conn.peer_name == alloc.user else "certificate names another user"
        if "bfcp-binds-on-hello" in self.defects:  # any offered certificate, any user id
            offered = {
                a.client_fingerprint.upper()
                for a in self.allocations.values()
                if a.conference_id == alloc.conference_id and a.client_fingerprint
            }
            return None if conn.peer_fingerprint in offered else "certificate was never offered"
        if alloc.client_fingerprint and alloc.client_fingerprint.upper() != conn.peer_fingerprint:
            return "TLS certificate does not match the a=fingerprint of that user id's offer"
        return None

    def _dispatch(self, conn: _Connection, msg: Bfcp) -> Bfcp | None:
        primitive = msg.primitive
        if primitive in (Primitive.FLOOR_REQUEST_STATUS_ACK, Primitive.FLOOR_STATUS_ACK):
            return None
        if primitive not in _HANDLED:
            return _reply_error(
                msg,
                ErrorCode.UNKNOWN_PRIMITIVE,
                f"{msg.primitive_name} is not handled by this server",
            )
        refusal = self._bind(conn, msg)
        if refusal is not None:
            return refusal
        floor = self.floors[msg.conference_id]
        if primitive == Primitive.HELLO:
            return _reply(
                msg,
                Primitive.HELLO_ACK,
                b.BfcpSupportedPrimitives(primitives=list(SUPPORTED)),
                b.BfcpSupportedAttributes(attributes=[t << 1 for t in SUPPORTED_ATTRIBUTES]),
            )
        if primitive == Primitive.GOODBYE:
            return _reply(msg, Primitive.GOODBYE_ACK)
        if primitive == Primitive.FLOOR_QUERY:
            floor.watchers.add(conn)
            return self._floor_status(msg, floor, msg.transaction_id)
        if primitive == Primitive.FLOOR_REQUEST:
            return self._request(conn, msg, floor)
        if primitive in (Primitive.FLOOR_RELEASE, Primitive.FLOOR_REQUEST_QUERY):
            return self._release_or_query(msg, floor, release=primitive == Primitive.FLOOR_RELEASE)
        return None

    def _request(self, conn: _Connection, msg: Bfcp, floor: _Floor) -> Bfcp:
        floor_ids = [a.floor_id for a in msg.attrs(b.BfcpFloorId)]
        if floor_ids != [FLOOR_ID]:
            return _reply_error(
                msg,
                ErrorCode.INVALID_FLOOR_ID,
                f"floor ids {floor_ids}: this conference has floor {FLOOR_ID}",
            )
        if msg.attr(b.BfcpBeneficiaryId) is not None and "bfcp-foreign-user-id" not in self.defects:
            return _reply_error(
                msg,
                ErrorCode.UNAUTHORIZED_OPERATION,
                "only a chair may request a floor for someone else",
            )
        req = FloorRequest(self._next_request, msg.user_id, conn)
        self._next_request += 1
        if floor.holder is None:
            req.status = RequestStatus.GRANTED
            floor.holder = req
        else:
            floor.queue.append(req)
        self._announce(msg.conference_id, floor)
        if "key-in-bfcp-status" in self.defects:  # the floor's stream, keys too, as status text
            return leaky.floor_request_status(self, msg, _fri(req))
        return _reply(msg, Primitive.FLOOR_REQUEST_STATUS, _fri(req))

    def _release_or_query(self, msg: Bfcp, floor: _Floor, *, release: bool) -> Bfcp:
        rid_attr = msg.attr(b.BfcpFloorRequestId)
        rid = rid_attr.floor_request_id if rid_attr is not None else -1
        requests = ([floor.holder] if floor.holder else []) + floor.queue
        req = next((r for r in requests if r.request_id == rid), None)
        if req is None:
            return _reply_error(
                msg,
                ErrorCode.FLOOR_REQUEST_ID_DOES_NOT_EXIST,
                f"floor request {rid} does not exist",
            )
        if req.user_id != msg.user_id and "bfcp-foreign-user-id" not in self.defects:
            return _reply_error(
                msg, ErrorCode.UNAUTHORIZED_OPERATION, "that floor request belongs to another user"
            )
        if not release:
            return _reply(msg, Primitive.FLOOR_REQUEST_STATUS, _fri(req))
        if floor.holder is req:
            _grant_next(msg.conference_id, floor)
        else:
            floor.queue.remove(req)
        req.status = RequestStatus.RELEASED
        self._announce(msg.conference_id, floor)
        return _reply(msg, Primitive.FLOOR_REQUEST_STATUS, _fri(req))

    def _floor_status(self, msg: Bfcp, floor: _Floor, txn: int) -> Bfcp:
        attrs: list[b.BfcpAttribute] = [b.BfcpFloorId(floor_id=FLOOR_ID)]
        if floor.holder is not None:
            attrs.append(_fri(floor.holder))
        return Bfcp(
            primitive=Primitive.FLOOR_STATUS,
            R=1 if txn else 0,
            conference_id=msg.conference_id,
            transaction_id=txn,
            user_id=msg.user_id,
            attributes=attrs,
        )

    def _announce(self, conference_id: int, floor: _Floor) -> None:
        for watcher in list(floor.watchers):
            if watcher.bound is not None:
                fake = Bfcp(conference_id=conference_id, user_id=watcher.bound.user_id)
                watcher.send(self._floor_status(fake, floor, 0))


def _grant_next(conference_id: int, floor: _Floor) -> None:
    """The floor passes to the first queued request, whose holder is told it is Granted."""
    floor.holder = floor.queue.pop(0) if floor.queue else None
    if floor.holder is not None:
        floor.holder.status = RequestStatus.GRANTED
        floor.holder.conn.send(
            Bfcp(
                primitive=Primitive.FLOOR_REQUEST_STATUS,
                conference_id=conference_id,
                user_id=floor.holder.user_id,
                attributes=[_fri(floor.holder)],
            )
        )


def _fri(req: FloorRequest) -> b.BfcpAttribute:
    return b.BfcpFloorRequestInformation(
        floor_request_id=req.request_id,
        attributes=[
            b.BfcpOverallRequestStatus(
                floor_request_id=req.request_id,
                attributes=[b.BfcpRequestStatus(request_status=req.status)],
            ),
            b.BfcpFloorRequestStatus(floor_id=FLOOR_ID),
        ],
    )


def _reply(msg: Bfcp, primitive: int, *attrs: b.BfcpAttribute) -> Bfcp:
    return Bfcp(
        primitive=primitive,
        R=1,
        conference_id=msg.conference_id,
        transaction_id=msg.transaction_id,
        user_id=msg.user_id,
        attributes=list(attrs),
    )


def _error(conf: int, txn: int, user: int, code: int, info: str) -> Bfcp:
    return Bfcp(
        primitive=Primitive.ERROR,
        R=1,
        conference_id=conf,
        transaction_id=txn,
        user_id=user,
        attributes=[b.BfcpErrorCode(error_code=code), b.BfcpErrorInfo(text=info.encode()[:200])],
    )


def _reply_error(msg: Bfcp, code: int, info: str) -> Bfcp:
    return _error(msg.conference_id, msg.transaction_id, msg.user_id, code, info)


def _fingerprint_of(m: MediaDescription) -> str | None:
    for name, value in m.attributes:
        if name == "fingerprint" and value:
            algo, _, fp = value.partition(" ")
            if algo.upper() == "SHA-256":
                return fp.strip()
    return None
