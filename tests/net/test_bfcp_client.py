"""The suite's BFCP client (confsec/net/bfcp.py) against small servers on loopback.

Each server misbehaves in one way a system under test might: answers, answers with an Error,
closes, or stays silent. The client must turn each into an observation within its deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from confsec.codec.bfcp import Bfcp, BfcpErrorCode, ErrorCode, Primitive
from confsec.errors import PeerTimeout, TransportError
from confsec.net.bfcp import BfcpClient


async def _server(behaviour: str) -> tuple[asyncio.base_events.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        req = Bfcp(data)
        if behaviour == "answer":
            # Two answers in one write, split oddly: framing must cope.
            other = Bfcp(primitive=Primitive.FLOOR_STATUS, transaction_id=0)
            ack = Bfcp(primitive=Primitive.HELLO_ACK, R=1, transaction_id=req.transaction_id)
            blob = bytes(other) + bytes(ack)
            writer.write(blob[:5])
            await writer.drain()
            writer.write(blob[5:])
        elif behaviour == "error":
            writer.write(
                bytes(
                    Bfcp(
                        primitive=Primitive.ERROR,
                        attributes=[BfcpErrorCode(error_code=ErrorCode.UNABLE_TO_PARSE_MESSAGE)],
                    )
                )
            )
        elif behaviour == "close":
            writer.close()
            return
        await reader.read()  # "silent" and the others: hold the connection open
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(("behaviour", "expect"), [("answer", 12), ("error", 13), ("close", None)])
def test_transact_observes_answer_error_or_close(run, behaviour: str, expect: int | None) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        server, port = await _server(behaviour)
        client = await BfcpClient.connect(
            "127.0.0.1", port, ssl_context=None, server_hostname=None, timeout=2
        )
        got = await client.transact(Bfcp(primitive=Primitive.HELLO, transaction_id=7), timeout=3)
        assert (got.message.primitive if got else None) == expect
        if behaviour == "answer":
            assert [r.message.primitive for r in client.received] == [
                Primitive.FLOOR_STATUS,
                Primitive.HELLO_ACK,
            ]
        await client.close()
        server.close()

    run(main(), timeout=10)


def test_a_silent_server_ends_in_peer_timeout(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        server, port = await _server("silent")
        client = await BfcpClient.connect(
            "127.0.0.1", port, ssl_context=None, server_hostname=None, timeout=2
        )
        with pytest.raises(PeerTimeout):
            await client.transact(Bfcp(primitive=Primitive.HELLO, transaction_id=1), timeout=0.3)
        await client.close()
        server.close()

    run(main(), timeout=10)


def test_nothing_listening_is_a_transport_error(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        server, port = await _server("silent")
        server.close()
        await server.wait_closed()
        with pytest.raises(TransportError):
            await BfcpClient.connect(
                "127.0.0.1", port, ssl_context=None, server_hostname=None, timeout=2
            )

    run(main(), timeout=10)
