"""TransportLayer over real loopback sockets: framing, flows, connection reuse, TLS errors."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from confsec.codec.sip import Headers, Request, Response, make_response
from confsec.errors import PeerTimeout, RemoteProtocolError, TlsVerificationError, TransportError
from confsec.net.flow import Flow
from confsec.net.transport import TransportLayer
from confsec.pki import TestPki

DOMAIN = "conference.example.test"


def options(n: int = 1, body: bytes = b"") -> Request:
    return Request(
        "OPTIONS",
        f"sip:focus@{DOMAIN}",
        Headers(
            [
                ("Via", f"SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{n:08d}"),
                ("From", "<sip:alice@example.test>;tag=a"),
                ("To", f"<sip:focus@{DOMAIN}>"),
                ("Call-ID", f"call-{n}"),
                ("CSeq", f"{n} OPTIONS"),
            ]
        ),
        body,
    )


class Sink:
    """Collects what a TransportLayer delivers and lets a test await it."""

    def __init__(self) -> None:
        self.messages: list[tuple[Request | Response, Flow]] = []
        self.errors: list[tuple[RemoteProtocolError, Flow, bytes]] = []
        self.closed: list[Flow] = []
        self._event = asyncio.Event()

    def on_message(self, message: Request | Response, flow: Flow) -> None:
        self.messages.append((message, flow))
        self._event.set()

    def on_error(self, error: RemoteProtocolError, flow: Flow, raw: bytes) -> None:
        self.errors.append((error, flow, raw))
        self._event.set()

    def on_closed(self, flow: Flow, exc: Exception | None) -> None:
        self.closed.append(flow)
        self._event.set()

    def layer(self, **kwargs: object) -> TransportLayer:
        return TransportLayer(self.on_message, self.on_error, self.on_closed, **kwargs)  # type: ignore[arg-type]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._event.clear()
                await self._event.wait()


@pytest.mark.parametrize("name", ["udp", "tcp", "tls"])
def test_request_and_response_travel_with_their_flow(
    name, run, server_ssl, client_ssl, pki
) -> None:
    async def main() -> None:
        server_sink, client_sink = Sink(), Sink()
        server = server_sink.layer()
        client = client_sink.layer(client_ssl=client_ssl(), server_hostname=DOMAIN)
        try:
            if name == "udp":
                port = (await server.listen_udp("127.0.0.1"))[1]
            elif name == "tcp":
                port = (await server.listen_tcp("127.0.0.1"))[1]
            else:
                port = (await server.listen_tls("127.0.0.1", 0, server_ssl()))[1]
            flow = await client.send(options(), (name, "127.0.0.1", port))
            assert flow.transport == name and flow.remote == ("127.0.0.1", port)
            await server_sink.until(lambda: server_sink.messages)
            request, in_flow = server_sink.messages[0]
            assert isinstance(request, Request) and request.call_id == "call-1"
            assert in_flow.remote == flow.local and in_flow.local[1] == port
            # The answer goes back on the flow it came in on (the client listens nowhere).
            server.send_on_flow(make_response(request, 200, to_tag="s"), in_flow)
            await client_sink.until(lambda: client_sink.messages)
            response, back = client_sink.messages[0]
            assert isinstance(response, Response) and response.status == 200
            assert back == flow
            assert back.secure is (name == "tls")
            if name == "tls":
                served = x509.load_pem_x509_certificate(pki.server().cert.read_bytes())
                assert back.peer_cert_der == served.public_bytes(Encoding.DER)
                assert back.tls_version and back.cipher
                assert in_flow.peer_cert_der is None  # no client certificate asked for
                assert in_flow.tls_version == back.tls_version
        finally:
            await client.close()
            await server.close()

    run(main())


def test_connect_reuses_open_connection_both_ways(run) -> None:
    async def main() -> None:
        server_sink, client_sink = Sink(), Sink()
        server, client = server_sink.layer(), client_sink.layer()
        try:
            port = (await server.listen_tcp("127.0.0.1"))[1]
            first, second = await asyncio.gather(
                client.connect("tcp", ("127.0.0.1", port)),
                client.connect("tcp", ("127.0.0.1", port)),
            )
            assert first == second
            assert await client.connect("tcp", ("127.0.0.1", port)) == first
            assert client.connections() == [first]
            client.send_on_flow(options(), first)
            await server_sink.until(lambda: server_sink.messages)
            back = server_sink.messages[0][1]
            # The server sends a new request towards the client's address: same connection.
            assert await server.send(options(2), ("tcp", *back.remote)) == back
            await client_sink.until(lambda: client_sink.messages)
            assert client_sink.messages[0][1] == first
            assert len(server.connections()) == 1
            client.close_flow(first)
            await server_sink.until(lambda: server_sink.closed)
            assert server_sink.closed == [back]
            with pytest.raises(TransportError):
                server.send_on_flow(options(3), back)
        finally:
            await client.close()
            await server.close()

    run(main())


def test_stream_framing_split_and_batched(run) -> None:
    async def main() -> None:
        sink = Sink()
        server = sink.layer()
        try:
            port = (await server.listen_tcp("127.0.0.1"))[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            one = options(1, b"x" * 300).to_bytes()
            for i in range(0, len(one), 7):  # dribbled in small pieces
                writer.write(one[i : i + 7])
                await writer.drain()
            batch = b"".join(options(n).to_bytes() for n in range(2, 502))
            writer.write(b"\r\n" + batch)  # a stray CRLF between messages is skipped
            await writer.drain()
            await sink.until(lambda: len(sink.messages) == 501)
            assert sink.messages[0][0].body == b"x" * 300
            assert [m.cseq[0] for m, _ in sink.messages] == list(range(1, 502))
            # RFC 5626 keep-alive: CRLFCRLF ping -> CRLF pong.
            writer.write(b"\r\n\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
            writer.close()
        finally:
            await server.close()

    run(main())


def test_garbage_on_a_stream_reports_error_and_closes(run) -> None:
    async def main() -> None:
        sink = Sink()
        server = sink.layer()
        try:
            port = (await server.listen_tcp("127.0.0.1"))[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            await sink.until(lambda: sink.errors and sink.closed)
            error, flow, _raw = sink.errors[0]
            assert "Content-Length" in str(error)
            assert flow.transport == "tcp"
            assert server.parse_errors == 1
            assert server.connections() == []
            writer.close()
        finally:
            await server.close()

    run(main())


def test_a_close_inside_a_message_is_a_malformed_message(run) -> None:
    """A Content-Length larger than the body, then a close: the message can never be read.
    It is reported with the bytes that came (a keep-alive CRLF before a close is not)."""

    async def main() -> None:
        sink = Sink()
        server = sink.layer()
        try:
            port = (await server.listen_tcp("127.0.0.1"))[1]

            async def send_and_close(data: bytes) -> int:
                errors, closed = len(sink.errors), len(sink.closed)
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(data)
                await writer.drain()
                writer.close()
                await sink.until(lambda: len(sink.closed) > closed)
                return len(sink.errors) - errors

            assert await send_and_close(b"\r\n\r\n") == 0
            assert await send_and_close(options(1).to_bytes()[:-4] + b"x") == 1
            error, flow, raw = sink.errors[-1]
            assert "closed inside a message" in str(error) and flow.transport == "tcp"
            assert raw.startswith(b"OPTIONS sip:focus@")
        finally:
            await server.close()

    run(main())


def test_udp_parse_error_is_reported_with_raw_bytes(run) -> None:
    async def main() -> None:
        sink = Sink()
        server = sink.layer()
        try:
            port = (await server.listen_udp("127.0.0.1"))[1]
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.sendto(b"\r\n\r\n", ("127.0.0.1", port))  # keep-alive: ignored
                sock.sendto(b"not sip at all", ("127.0.0.1", port))
                await sink.until(lambda: sink.errors)
            finally:
                sock.close()
            assert sink.errors[0][2] == b"not sip at all"
            assert sink.messages == []
        finally:
            await server.close()

    run(main())


def test_connection_refused_is_transport_error(run) -> None:
    async def main() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        layer = TransportLayer()
        try:
            with pytest.raises(TransportError, match="cannot connect") as info:
                await layer.connect("tcp", ("127.0.0.1", port))
            assert not isinstance(info.value, TlsVerificationError)
        finally:
            await layer.close()

    run(main())


def test_tls_handshake_that_never_completes_is_peer_timeout(run, client_ssl) -> None:
    async def main() -> None:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)  # accepts TCP, never speaks TLS
        layer = TransportLayer(client_ssl=client_ssl(), server_hostname=DOMAIN)
        try:
            with pytest.raises(PeerTimeout):
                await layer.connect("tls", silent.getsockname(), timeout=0.3)
        finally:
            silent.close()
            await layer.close()

    run(main())


@pytest.mark.parametrize(
    ("cert", "hostname", "reason"),
    [
        ("other-domain", DOMAIN, "mismatch"),
        ("expired", DOMAIN, "expired"),
        ("self-signed", DOMAIN, "self"),
        ("service", "elsewhere.example.test", "mismatch"),
    ],
)
def test_tls_verification_failures(cert, hostname, reason, run, server_ssl, client_ssl) -> None:
    async def main() -> None:
        server = TransportLayer()
        client = TransportLayer(client_ssl=client_ssl())
        try:
            port = (await server.listen_tls("127.0.0.1", 0, server_ssl(cert)))[1]
            with pytest.raises(TlsVerificationError, match=reason):
                await client.connect("tls", ("127.0.0.1", port), server_hostname=hostname)
            assert client.connections() == []
        finally:
            await client.close()
            await server.close()

    run(main())


def test_bad_tls_clients_are_counted_and_the_server_keeps_serving(
    run, server_ssl, client_ssl
) -> None:
    async def main() -> None:
        sink = Sink()
        server = sink.layer(handshake_timeout=0.5)
        good = TransportLayer(client_ssl=client_ssl(), server_hostname=DOMAIN)
        try:
            port = (await server.listen_tls("127.0.0.1", 0, server_ssl()))[1]
            # 1: plaintext SIP to a TLS port. 2: a client that connects and says nothing.
            _, w1 = await asyncio.open_connection("127.0.0.1", port)
            w1.write(options().to_bytes())
            await w1.drain()
            _, w2 = await asyncio.open_connection("127.0.0.1", port)
            # 3: a TLS client that does not trust the server.
            distrust = ssl.create_default_context()
            with pytest.raises(TlsVerificationError):
                await good.connect("tls", ("127.0.0.1", port), ssl_context=distrust)
            async with asyncio.timeout(5):
                while server.tls_handshake_failures < 3:
                    await asyncio.sleep(0.05)
            assert len(server.tls_handshake_errors) == 3
            assert sink.messages == []
            flow = await good.send(options(), ("tls", "127.0.0.1", port))
            await sink.until(lambda: sink.messages)
            assert sink.messages[0][1].remote == flow.local
            w1.close()
            w2.close()
        finally:
            await good.close()
            await server.close()

    run(main())


def test_mutual_tls_flow_carries_client_identity(run, pki: TestPki) -> None:
    from confsec.net import tls

    async def main() -> None:
        sink = Sink()
        server = sink.layer()
        alice = pki.client("alice")
        client = TransportLayer(
            client_ssl=tls.client_context(pki.ca_cert, alice.cert, alice.key),
            server_hostname=DOMAIN,
        )
        try:
            context = tls.server_context(
                pki.server().cert, pki.server().key, pki.ca_cert, require_client_cert=True
            )
            port = (await server.listen_tls("127.0.0.1", 0, context))[1]
            await client.send(options(), ("tls", "127.0.0.1", port))
            await sink.until(lambda: sink.messages)
            flow = sink.messages[0][1]
            identity = flow.peer_identity
            assert identity is not None
            assert identity.uris == (f"sip:alice@{DOMAIN}",)
        finally:
            await client.close()
            await server.close()

    run(main())
