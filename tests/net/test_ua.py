"""UserAgent <-> UserAgent over real loopback sockets (UDP, TCP, TLS); no mock of the peer."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from confsec.codec.digest import DigestServer
from confsec.codec.sip import Request, Response, make_response, parse_message
from confsec.errors import PeerTimeout, TlsVerificationError, TransportError
from confsec.net._txn_fsm import Timers
from confsec.net.dialog import Dialog
from confsec.net.flow import Flow
from confsec.net.incoming import IncomingRequest
from confsec.net.trace import TraceEntry
from confsec.net.ua import UserAgent

DOMAIN = "conference.example.test"
FAST = Timers(t1=0.05, t2=0.4, t4=0.5, d=0.5, trying=0.05)
FACTORY = f"sips:conf-factory@{DOMAIN}"
SDP_OFFER = b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
SDP_ANSWER = b"v=0\r\no=focus 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
TRANSPORTS = ["udp", "tcp", "tls"]


@dataclass
class Server:
    """What the server-side handler saw."""

    ua: UserAgent
    dest: tuple[str, str, int]
    requests: list[IncomingRequest] = field(default_factory=list)
    dialogs: list[Dialog] = field(default_factory=list)
    digest: DigestServer | None = None
    verdicts: list[str] = field(default_factory=list)


@asynccontextmanager
async def server_and_client(
    transport: str,
    server_ssl: Callable[..., ssl.SSLContext],
    client_ssl: Callable[[], ssl.SSLContext],
    *,
    digest: bool = False,
    password: str = "secret",
    timers: Timers = FAST,
) -> AsyncIterator[tuple[Server, UserAgent]]:
    """A conference-server UA listening on `transport` and an alice UA with no listener."""
    holder: dict[str, Server] = {}

    async def handler(incoming: IncomingRequest) -> None:
        server = holder["server"]
        server.requests.append(incoming)
        if server.digest is not None and incoming.method == "INVITE":
            result = server.digest.verify(
                incoming.method,
                incoming.request.uri,
                incoming.request.headers.get("Authorization"),
            )
            server.verdicts.append(result.reason or "ok")
            if not result.ok:
                if result.reason == "no-credentials" or result.stale:
                    challenge = server.digest.challenge(stale=result.stale)
                    await incoming.respond(
                        401, headers=[("WWW-Authenticate", challenge.to_header())]
                    )
                else:
                    await incoming.respond(403)
                return
        if incoming.method == "INVITE":
            dialog = await incoming.respond(200, body=SDP_ANSWER, content_type="application/sdp")
            assert dialog is not None
            server.dialogs.append(dialog)
        else:
            await incoming.respond(200)

    listen = [(transport, "127.0.0.1", 0)]
    server_ua = await UserAgent.start(
        aor=FACTORY,
        display_name="Focus",
        transport=listen,
        server_ssl=server_ssl() if transport == "tls" else None,
        request_handler=handler,
        timers=timers,
    )
    server = Server(server_ua, server_ua.address(transport))
    if digest:
        server.digest = DigestServer(
            DOMAIN, {"alice": "secret"}, now=asyncio.get_running_loop().time
        )
    holder["server"] = server
    client_ua = await UserAgent.start(
        aor=f"sips:alice@{DOMAIN}",
        display_name="Alice",
        credentials=("alice", password),
        client_ssl=client_ssl(),
        server_hostname=DOMAIN,
        timers=timers,
    )
    try:
        yield server, client_ua
    finally:
        await client_ua.close()
        await server_ua.close()


def received(ua: UserAgent) -> list[TraceEntry]:
    return [e for e in ua.trace if e.direction == "received"]


# --------------------------------------------------------------------------------------- OPTIONS


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_options_round_trip(transport: str, server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client(transport, server_ssl, client_ssl) as (server, alice):
            response = await alice.request("OPTIONS", FACTORY, dest=server.dest)
            assert response.status == 200
            assert "INVITE" in (response.headers.get("Allow") or "")
            assert server.requests[0].request.method == "OPTIONS"
            entry = received(alice)[-1]
            assert isinstance(entry.message, Response)
            assert entry.flow.transport == transport
            assert entry.flow.secure is (transport == "tls")
            if transport == "tls":
                assert entry.flow.peer_cert_der
                assert entry.flow.tls_version in ("TLSv1.2", "TLSv1.3")
                assert entry.flow.cipher
                assert server.requests[0].flow.secure
            # A second request reuses the connection (one stream flow in each table).
            await alice.request("OPTIONS", FACTORY, dest=server.dest)
            if transport != "udp":
                assert len(alice.transport.connections()) == 1
                assert len(server.ua.transport.connections()) == 1
            sent = [e for e in alice.trace if e.direction == "sent"]
            assert [e.summary for e in sent] == [f"OPTIONS {FACTORY}"] * 2

    run(main())


# ------------------------------------------------------------------------------ INVITE / dialogs


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_invite_creates_dialogs_on_both_sides_and_bye_from_client(
    transport: str, server_ssl, client_ssl, run
) -> None:
    async def main() -> None:
        async with server_and_client(transport, server_ssl, client_ssl) as (server, alice):
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest)
            assert call.response.status == 200
            assert call.response.body == SDP_ANSWER
            assert call.dialog is not None
            uac = call.dialog
            await asyncio.wait_for(server.dialogs[0].confirmed.wait(), 5)
            uas = server.dialogs[0]
            assert uac.id == (uas.call_id, uas.remote_tag, uas.local_tag)
            assert uac.role == "uac" and uas.role == "uas"
            assert uac.secure is uas.secure is (transport == "tls")
            assert uas.remote_sdp == SDP_OFFER
            assert uac.remote_sdp == SDP_ANSWER
            acks = [
                e
                for e in server.ua.trace
                if isinstance(e.message, Request) and e.message.method == "ACK"
            ]
            assert len(acks) == 1
            assert acks[0].message.branch != call.request.branch  # ACK for 2xx: new branch
            # BYE from the client ends both sides.
            bye = await uac.bye()
            assert bye.status == 200
            assert uac.terminated.is_set()
            await asyncio.wait_for(uas.terminated.wait(), 5)
            assert not alice.dialogs and not server.ua.dialogs

    run(main())


def test_reinvite_and_bye_from_server_over_clients_tls_connection(
    server_ssl, client_ssl, run
) -> None:
    async def main() -> None:
        async with server_and_client("tls", server_ssl, client_ssl) as (server, alice):
            # alice listens nowhere: the only way back to her is the connection she opened.
            assert alice.transport.listeners() == []
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest)
            assert call.dialog is not None
            uac = call.dialog
            seen: list[IncomingRequest] = []

            async def on_request(incoming: IncomingRequest) -> None:
                seen.append(incoming)
                if incoming.method == "INVITE":
                    await incoming.respond(200, body=SDP_OFFER, content_type="application/sdp")
                else:
                    await incoming.respond(200)

            uac.on_request = on_request
            await asyncio.wait_for(server.dialogs[0].confirmed.wait(), 5)
            uas = server.dialogs[0]
            response = await uas.reinvite(SDP_ANSWER + b"a=sendonly\r\n")
            assert response.status == 200
            assert response.body == SDP_OFFER
            assert seen[0].method == "INVITE"
            assert seen[0].dialog is uac
            assert seen[0].flow == uac.flow  # arrived on alice's own TLS connection
            assert seen[0].flow.secure
            # The re-INVITE's 2xx is ACKed by the server side, and alice sees the ACK.
            await alice.wait_for(
                lambda e: isinstance(e.message, Request) and e.message.method == "ACK",
                5,
                since=0,
            )
            assert len(alice.transport.connections()) == 1
            # INFO in the dialog the other way, then BYE from the server.
            info = await uas.request("INFO", b"hello", content_type="text/plain")
            assert info.status == 200
            assert (await uas.bye()).status == 200
            await asyncio.wait_for(uac.terminated.wait(), 5)
            assert uas.terminated.is_set()
            methods = [e.message.method for e in received(alice) if isinstance(e.message, Request)]
            assert methods == ["INVITE", "ACK", "INFO", "BYE"]
            assert all(e.flow.secure for e in alice.trace)

    run(main())


def test_request_right_behind_the_2xx_finds_the_callers_dialog(server_ssl, client_ssl, run) -> None:
    """A focus that rekeys a participant it has just admitted sends its in-dialog request
    right behind the 2xx, before the ACK: the caller must answer it in the dialog, not 481
    (which ends the dialog on the focus's side, §12.2.1.2). Both messages reach the caller's
    reader together, before `invite()` resumes."""

    async def main() -> None:
        async with server_and_client("tls", server_ssl, client_ssl) as (server, alice):
            answers: list[int] = []
            answered = asyncio.Event()

            async def handler(incoming: IncomingRequest) -> None:
                dialog = await incoming.respond(
                    200, body=SDP_ANSWER, content_type="application/sdp"
                )
                assert dialog is not None
                info = await dialog.request("INFO", b"k", content_type="text/plain")
                answers.append(info.status)
                answered.set()

            server.ua.uas.request_handler = handler
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest)
            assert call.response.status == 200 and call.dialog is not None
            await asyncio.wait_for(answered.wait(), 5)
            assert answers == [200]
            assert not call.dialog.terminated.is_set()

    run(main())


def test_reinvite_without_handler_gets_488(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client("tcp", server_ssl, client_ssl) as (server, alice):
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest)
            assert call.dialog is not None
            await asyncio.wait_for(server.dialogs[0].confirmed.wait(), 5)
            mark = len(alice.trace)
            response = await server.dialogs[0].reinvite(SDP_ANSWER)
            assert response.status == 488
            # The non-2xx was ACKed by the client INVITE transaction (same branch).
            ack = await alice.wait_for(
                lambda e: isinstance(e.message, Request) and e.message.method == "ACK",
                5,
                since=mark,
            )
            reinvite = alice.trace[mark].message
            assert isinstance(reinvite, Request) and reinvite.method == "INVITE"
            assert isinstance(ack.message, Request)
            assert ack.message.branch == reinvite.branch
            assert not call.dialog.terminated.is_set()

    run(main())


def test_requests_for_unknown_dialog_get_481(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client("udp", server_ssl, client_ssl) as (server, alice):
            response = await alice.request(
                "BYE", FACTORY, dest=server.dest, to=f"<{FACTORY}>;tag=nosuchdialog"
            )
            assert response.status == 481

    run(main())


# ---------------------------------------------------------------------------------------- digest


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_digest_challenge_right_password(transport: str, server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client(transport, server_ssl, client_ssl, digest=True) as (
            server,
            alice,
        ):
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest)
            assert call.response.status == 200
            assert [r.status for r in call.responses if r.status >= 200] == [401, 200]
            assert server.verdicts == ["no-credentials", "ok"]
            first, second = (r.request for r in server.requests)
            assert second.cseq[0] == first.cseq[0] + 1
            assert second.call_id == first.call_id
            assert second.from_.tag == first.from_.tag
            assert second.branch != first.branch
            assert call.request.headers.get("Authorization") == alice.last_authorization
            assert alice.last_authorization_header == "Authorization"
            assert call.dialog is not None
            await call.dialog.bye()

    run(main())


def test_digest_wrong_password_surfaces_as_final_answer(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client(
            "tcp", server_ssl, client_ssl, digest=True, password="wrong"
        ) as (server, alice):
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest)
            assert call.response.status in (401, 403)
            assert call.dialog is None
            assert len(server.requests) == 2  # one retry, no loop
            assert server.verdicts == ["no-credentials", "bad-response"]

    run(main())


def test_authenticate_false_returns_the_challenge(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client("udp", server_ssl, client_ssl, digest=True) as (
            server,
            alice,
        ):
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest, authenticate=False)
            assert call.response.status == 401
            assert call.response.headers.get("WWW-Authenticate", "").startswith("Digest ")
            assert len(server.requests) == 1

    run(main())


def test_replayed_authorization_is_refused(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client("tls", server_ssl, client_ssl, digest=True) as (
            server,
            alice,
        ):
            call = await alice.invite(FACTORY, SDP_OFFER, dest=server.dest)
            assert call.response.status == 200
            assert alice.last_authorization is not None
            assert call.dialog is not None
            await call.dialog.bye()
            replay = await alice.invite(
                FACTORY,
                SDP_OFFER,
                dest=server.dest,
                headers=[("Authorization", alice.last_authorization)],
                authenticate=False,
            )
            assert replay.response.status == 403
            assert server.verdicts[-1] == "replayed-nonce-count"
            sent = replay.request.headers.get("Authorization")
            assert sent == alice.last_authorization

    run(main())


# ---------------------------------------------------------------------------- UDP and timeouts


def _raw_udp_peer() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def test_udp_retransmission_when_first_request_is_dropped(run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        peer = _raw_udp_peer()
        port = peer.getsockname()[1]
        alice = await UserAgent.start(aor=f"sip:alice@{DOMAIN}", timers=FAST)
        try:
            task = asyncio.ensure_future(
                alice.request(
                    "OPTIONS", f"sip:peer@127.0.0.1:{port}", dest=("udp", "127.0.0.1", port)
                )
            )
            first, _ = await loop.sock_recvfrom(peer, 65535)  # dropped on purpose
            second, addr = await loop.sock_recvfrom(peer, 65535)
            assert first == second  # a retransmission is the same request, same branch
            request = parse_message(second)
            assert isinstance(request, Request)
            await loop.sock_sendto(peer, make_response(request, 200, to_tag="p").to_bytes(), addr)
            response = await task
            assert response.status == 200
            sent = [e for e in alice.trace if e.direction == "sent"]
            assert len(sent) >= 2
            assert sent[1].time - sent[0].time >= FAST.t1 * 0.8
        finally:
            peer.close()
            await alice.close()

    run(main())


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE"])
def test_timer_b_f_expiry_gives_peer_timeout(method: str, run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        peer = _raw_udp_peer()  # never answers
        port = peer.getsockname()[1]
        timers = Timers(t1=0.01)
        alice = await UserAgent.start(aor=f"sip:alice@{DOMAIN}", timers=timers)
        try:
            started = loop.time()
            with pytest.raises(PeerTimeout, match=f"Timer {'B' if method == 'INVITE' else 'F'}"):
                await alice.request(
                    method,
                    f"sip:peer@127.0.0.1:{port}",
                    dest=("udp", "127.0.0.1", port),
                    timeout=None,
                )
            assert loop.time() - started < 3.0
            assert not alice.transactions.clients
        finally:
            peer.close()
            await alice.close()

    run(main())


def test_caller_timeout_in_proceeding_cancels_invite(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async def slow(incoming: IncomingRequest) -> None:
            await incoming.respond(180)
            await incoming.cancelled.wait()

        server = await UserAgent.start(
            aor=FACTORY, transport=[("tcp", "127.0.0.1", 0)], request_handler=slow, timers=FAST
        )
        alice = await UserAgent.start(aor=f"sip:alice@{DOMAIN}", timers=FAST)
        try:
            with pytest.raises(PeerTimeout):
                await alice.invite(FACTORY, SDP_OFFER, dest=server.address("tcp"), timeout=0.5)
            incoming = server.incoming[0]
            await asyncio.wait_for(incoming.cancelled.wait(), 5)
            assert [r.status for r in incoming.responses] == [180, 487]
            # alice's INVITE transaction ACKs the 487.
            await server.wait_for(
                lambda e: isinstance(e.message, Request) and e.message.method == "ACK",
                5,
                since=0,
            )
        finally:
            await alice.close()
            await server.close()

    run(main())


# ---------------------------------------------------------------------------------- TLS / abuse


def test_tls_server_with_certificate_for_another_domain(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        server = await UserAgent.start(
            aor=FACTORY,
            transport=[("tls", "127.0.0.1", 0)],
            server_ssl=server_ssl("other-domain"),
        )
        alice = await UserAgent.start(
            aor=f"sips:alice@{DOMAIN}", client_ssl=client_ssl(), server_hostname=DOMAIN
        )
        try:
            with pytest.raises(TlsVerificationError, match=r"[Hh]ostname mismatch"):
                await alice.request("OPTIONS", FACTORY, dest=server.address("tls"))
            # The server counted the failed handshake and keeps serving.
            for _ in range(50):
                if server.transport.tls_handshake_failures:
                    break
                await asyncio.sleep(0.02)
            assert server.transport.tls_handshake_failures == 1
            bob = await UserAgent.start(
                aor="sips:bob@attacker.example.test",
                client_ssl=client_ssl(),
                server_hostname="attacker.example.test",
            )
            try:
                response = await bob.request("OPTIONS", FACTORY, dest=server.address("tls"))
                assert response.status == 200
            finally:
                await bob.close()
        finally:
            await alice.close()
            await server.close()

    run(main())


def test_garbage_over_tcp_closes_the_connection_not_the_server(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client("tcp", server_ssl, client_ssl) as (server, alice):
            _, host, port = server.dest
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"\x16\x03\x01garbage that is not SIP\r\n\r\n" * 3)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            writer.close()
            assert server.ua.transport.parse_errors >= 1
            response = await alice.request("OPTIONS", FACTORY, dest=server.dest)
            assert response.status == 200

    run(main())


def test_garbage_over_udp_gets_400_or_is_dropped(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with server_and_client("udp", server_ssl, client_ssl) as (server, alice):
            _, host, port = server.dest
            peer = _raw_udp_peer()
            try:
                await loop.sock_sendto(peer, b"\x00\x01 binary garbage \xff\xfe", (host, port))
                broken = (
                    b"OPTIONS sip:focus@127.0.0.1 SIP/2.0\r\n"
                    b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad1\r\n"
                    b"From: <sip:x@127.0.0.1>;tag=1\r\n"
                    b"To: <sip:focus@127.0.0.1>\r\n"
                    b"Call-ID: broken-1\r\n"
                    b"CSeq: 1 OPTIONS\r\n"
                    b"this line has no colon\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
                await loop.sock_sendto(peer, broken, (host, port))
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(peer, 65535), 5)
                answer = parse_message(data)
                assert isinstance(answer, Response)
                assert answer.status == 400
                assert answer.call_id == "broken-1"
                assert server.ua.transport.parse_errors == 2
                # Only one answer: the binary garbage was dropped.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(loop.sock_recvfrom(peer, 65535), 0.3)
            finally:
                peer.close()
            assert (await alice.request("OPTIONS", FACTORY, dest=server.dest)).status == 200

    run(main())


def test_send_raw_and_trace_show_crafted_bytes(server_ssl, client_ssl, run) -> None:
    async def main() -> None:
        async with server_and_client("tcp", server_ssl, client_ssl) as (server, alice):
            flow = await alice.send_raw(b"\r\n\r\n", server.dest)  # keep-alive ping
            assert isinstance(flow, Flow)
            assert alice.trace[-1].message == b"\r\n\r\n"
            response = await alice.request("OPTIONS", FACTORY, dest=flow)
            assert response.status == 200

    run(main())


def test_missing_client_certificate_fails_fast_not_by_timeout(pki, client_ssl, run) -> None:
    """TLS 1.3 lets the client finish its handshake; the refusal comes at the first read, and
    the request must fail with TransportError, not wait for Timer F."""
    from confsec.net import tls

    async def main() -> None:
        context = tls.server_context(
            pki.server().cert, pki.server().key, pki.ca_cert, require_client_cert=True
        )
        server = await UserAgent.start(
            aor=FACTORY, transport=[("tls", "127.0.0.1", 0)], server_ssl=context, timers=FAST
        )
        alice = await UserAgent.start(
            aor=f"sips:alice@{DOMAIN}",
            client_ssl=client_ssl(),
            server_hostname=DOMAIN,
            timers=Timers(t1=5.0),
        )
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TransportError):
                await alice.request("OPTIONS", FACTORY, dest=server.address("tls"), timeout=20)
            assert loop.time() - started < 5
            assert server.incoming == []
        finally:
            await alice.close()
            await server.close()

    run(main())


def _raw_request(method: str, port: int, branch: str, cseq: int = 1, to_tag: str = "") -> bytes:
    to = f"<sip:focus@127.0.0.1>;tag={to_tag}" if to_tag else "<sip:focus@127.0.0.1>"
    return (
        f"{method} sip:focus@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:raw@127.0.0.1>;tag=raw1\r\n"
        f"To: {to}\r\n"
        "Call-ID: raw-call-1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: <sip:raw@127.0.0.1:{port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_server_absorbs_retransmitted_request_and_resends_response(run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        calls: list[IncomingRequest] = []

        async def handler(incoming: IncomingRequest) -> None:
            calls.append(incoming)
            await incoming.respond(200)

        server = await UserAgent.start(
            aor=FACTORY, transport=[("udp", "127.0.0.1", 0)], request_handler=handler, timers=FAST
        )
        peer = _raw_udp_peer()
        port = peer.getsockname()[1]
        try:
            dest = server.address("udp")[1:]
            request = _raw_request("OPTIONS", port, "z9hG4bKabsorb")
            await loop.sock_sendto(peer, request, dest)
            first, _ = await asyncio.wait_for(loop.sock_recvfrom(peer, 65535), 5)
            await loop.sock_sendto(peer, request, dest)  # as if our first 200 was lost
            second, _ = await asyncio.wait_for(loop.sock_recvfrom(peer, 65535), 5)
            assert first == second
            assert len(calls) == 1
        finally:
            peer.close()
            await server.close()

    run(main())


def test_uas_retransmits_2xx_over_udp_until_ack(run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        dialogs: list[Dialog] = []

        async def handler(incoming: IncomingRequest) -> None:
            dialog = await incoming.respond(200, body=SDP_ANSWER, content_type="application/sdp")
            assert dialog is not None
            dialogs.append(dialog)

        server = await UserAgent.start(
            aor=FACTORY, transport=[("udp", "127.0.0.1", 0)], request_handler=handler, timers=FAST
        )
        peer = _raw_udp_peer()
        port = peer.getsockname()[1]
        try:
            dest = server.address("udp")[1:]
            await loop.sock_sendto(peer, _raw_request("INVITE", port, "z9hG4bKinv"), dest)
            oks: list[Response] = []
            while len(oks) < 3:  # the first 200 and two retransmissions (T1, 2*T1)
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(peer, 65535), 5)
                message = parse_message(data)
                assert isinstance(message, Response)
                if message.status == 200:
                    oks.append(message)
            assert len({ok.to.tag for ok in oks}) == 1
            assert not dialogs[0].confirmed.is_set()
            ack = _raw_request("ACK", port, "z9hG4bKack", to_tag=oks[0].to.tag or "")
            await loop.sock_sendto(peer, ack, dest)
            await asyncio.wait_for(dialogs[0].confirmed.wait(), 5)
            # No more 200s once the ACK is in (well past the next retransmission time).
            with pytest.raises(TimeoutError):
                while True:
                    data, _ = await asyncio.wait_for(loop.sock_recvfrom(peer, 65535), 0.5)
                    assert parse_message(data).status != 200  # type: ignore[union-attr]
        finally:
            peer.close()
            await server.close()

    run(main())
