"""The focus -> mixer key interface on the wire (observation O1: AS -> MRFC -> MRFP).

TR 33.829 5.1.2 notes that media keys made in the AS travel to the MRFP, and that those
interfaces must be protected (NDS/IP). In the reference the focus and the mixer live in one
process, which would make that interface invisible; here it becomes a real loopback connection
that a capture can see: `KeyChannelClient` implements `MixerControl` for the focus and serialises
each call (and every `LegSetup` with its keys) as one JSON line; `KeyChannelServer` replays them
on the real `Mixer`. The channel runs over TLS; the `key-channel-in-clear` defect runs it over
plain TCP, so a capture of that port shows the keys.

`install` and `release` are synchronous in `MixerControl` (the focus does not wait for them), so
the client writes them without waiting for a reply; one connection keeps them in order after the
`allocate` they depend on. Attributes of the mixer that are not part of the key interface
(statistics, the mixer's own ledger) are read from the local mixer.

What comes off the wire is never trusted to name code: a value's type is looked up in
`WIRE_TYPES`, built from the control types alone, and any other name is refused with
`UnknownWireType`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import ssl
from pathlib import Path
from typing import Any

from confsec.errors import RemoteProtocolError
from confsec.net.tls import client_context, server_context
from confsec.pki import TestPki
from confsec.reference.mixer_control import CONTROL_TYPES, LegSetup, MixerControl

log = logging.getLogger(__name__)

DEFECT = "key-channel-in-clear"
NO_CLIENT_AUTH_DEFECT = "key-channel-no-client-auth"
ANY_CLIENT_DEFECT = "key-channel-any-client-cert"
_LIMIT = 1 << 20

WIRE_TYPES: dict[str, type] = {cls.__name__: cls for cls in CONTROL_TYPES}
"""The name each control type goes by on the wire (`"__dc__"`), and the only names decoded."""


class UnknownWireType(RemoteProtocolError):
    """A key channel message names a type that is not one of the control types."""


def encode(value: Any) -> Any:
    """JSON form of the dataclasses the interface carries; bytes as base64, tuples kept."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if WIRE_TYPES.get(name) is not type(value):
            raise TypeError(f"{name} is not a type of the key channel")
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dc__": name, **fields}
    if isinstance(value, bytes):
        return {"__b64__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple):
        return {"__t__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__b64__" in value:
        return base64.b64decode(value["__b64__"])
    if "__t__" in value:
        return tuple(decode(v) for v in value["__t__"])
    if "__dc__" in value:
        name = value["__dc__"]
        cls = WIRE_TYPES.get(name) if isinstance(name, str) else None
        if cls is None:
            known = ", ".join(sorted(WIRE_TYPES))
            raise UnknownWireType(f"unknown type {name!r} on the key channel (known: {known})")
        fields = {k: decode(v) for k, v in value.items() if k != "__dc__"}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise RemoteProtocolError(f"{name} on the key channel: {exc}") from None
    return {k: decode(v) for k, v in value.items()}


class KeyChannelServer:
    """The mixer's end: applies each request line to the real mixer, answers `allocate`."""

    def __init__(self, mixer: MixerControl, host: str = "127.0.0.1", peer_name: str | None = None):
        self.mixer = mixer
        self.host = host
        self.peer_name = peer_name
        """The DNS name the client certificate must carry (the AS's, i.e. the focus's); None
        takes any certificate the CA issued (the `key-channel-any-client-cert` defect)."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, ssl_ctx: ssl.SSLContext | None) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, 0, ssl=ssl_ctx, limit=_LIMIT
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if not self._peer_allowed(writer):
                return  # a participant's certificate is valid, but not the AS's: closed
            while line := await reader.readline():
                reply = await self._apply(json.loads(line))
                if reply is not None:
                    writer.write(json.dumps(reply).encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, ssl.SSLError, json.JSONDecodeError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> bool:
        """Only the AS may send key commands: a certificate that chains to the CA is not
        enough, since every participant holds one (NDS/IP authenticates the peer node)."""
        if self.peer_name is None or writer.get_extra_info("ssl_object") is None:
            return True
        cert = writer.get_extra_info("peercert") or {}
        names = {v.lower() for k, v in cert.get("subjectAltName", ()) if k == "DNS"}
        if self.peer_name.lower() not in names:
            log.warning("key channel: refused a client certificate for %s", sorted(names))
            return False
        return True

    async def _apply(self, req: dict[str, Any]) -> dict[str, Any] | None:
        op = req.get("op")
        try:
            if op == "allocate":
                ports = await self.mixer.allocate(
                    req["conference_id"], req["leg_id"], tuple(req["media"])
                )
                return {"id": req["id"], "ports": {k: list(v) for k, v in ports.items()}}
            if op == "install":
                self.mixer.install(decode(req["setup"]))
            elif op == "release":
                self.mixer.release(req["conference_id"], req["leg_id"])
        except Exception as exc:  # one bad request must not take the channel down
            log.exception("key channel: %s failed", op)
            if op == "allocate":
                return {"id": req.get("id"), "error": str(exc)}
        return None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()


class KeyChannelClient:
    """The focus's end: a `MixerControl` whose calls cross the key channel."""

    def __init__(self, mixer: MixerControl):
        self._local = mixer
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def connect(
        self, host: str, port: int, ssl_ctx: ssl.SSLContext | None, server_hostname: str | None
    ) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            host,
            port,
            ssl=ssl_ctx,
            server_hostname=server_hostname if ssl_ctx else None,
            limit=_LIMIT,
        )
        self._reading = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                reply = json.loads(line)
                fut = self._waiting.pop(reply.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the key channel closed"))

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is None:
            raise ConnectionError("the key channel is not connected")
        self._writer.write(json.dumps(message).encode() + b"\n")

    async def allocate(
        self, conference_id: str, leg_id: str, media: tuple[str, ...]
    ) -> dict[str, tuple[str, int]]:
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        self._send(
            {
                "op": "allocate",
                "id": self._next,
                "conference_id": conference_id,
                "leg_id": leg_id,
                "media": list(media),
            }
        )
        reply = await asyncio.wait_for(fut, 10)
        if "error" in reply:
            raise RuntimeError(f"mixer allocate failed: {reply['error']}")
        return {k: (v[0], int(v[1])) for k, v in reply["ports"].items()}

    def install(self, setup: LegSetup) -> None:
        self._send({"op": "install", "setup": encode(setup)})

    def release(self, conference_id: str, leg_id: str) -> None:
        try:
            self._send({"op": "release", "conference_id": conference_id, "leg_id": leg_id})
        except ConnectionError:
            pass  # shutting down: the mixer closes its legs itself

    def __getattr__(self, name: str) -> Any:
        # Not part of the key interface: statistics, the mixer's ledger.
        return getattr(self._local, name)

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
        if self._writer is not None:
            self._writer.close()


class KeyChannel:
    """Both ends on loopback: what `ReferenceDeployment` starts beside its mixer."""

    def __init__(self, server: KeyChannelServer, client: KeyChannelClient, tls: bool):
        self.server = server
        self.client = client
        self.tls = tls

    @property
    def port(self) -> int:
        return self.server.port

    @classmethod
    async def start(
        cls,
        mixer: MixerControl,
        *,
        host: str,
        server_ctx: ssl.SSLContext | None,
        client_ctx: ssl.SSLContext | None,
        server_hostname: str,
        peer_name: str | None = None,
    ) -> KeyChannel:
        server = KeyChannelServer(mixer, host, peer_name)
        await server.start(server_ctx)
        client = KeyChannelClient(mixer)
        await client.connect(host, server.port, client_ctx, server_hostname)
        return cls(server, client, server_ctx is not None)

    async def close(self) -> None:
        await self.client.close()
        await self.server.close()


async def start_for(
    mixer: MixerControl,
    pki: TestPki,
    *,
    host: str,
    domain: str,
    defects: frozenset[str],
    keylog_file: Path | None,
) -> KeyChannel:
    """The channel of a deployment: TLS with the service certificate, or the defect.

    The focus verifies the mixer's certificate for the service domain against the run's CA; the
    key log of the reference gets the channel's secrets too, so a capture can still be read.
    """
    in_clear = DEFECT in defects
    cert = pki.server("service")
    ca = pki.ca_cert
    # Mutual TLS, as NDS/IP authenticates both ends: a mixer that took key commands from anyone
    # who can reach its port would let them install their own keys.
    require_client = NO_CLIENT_AUTH_DEFECT not in defects
    server_ctx = (
        None
        if in_clear
        else server_context(
            cert.cert,
            cert.key,
            ca_file=ca,
            require_client_cert=require_client,
            keylog_file=keylog_file,
        )
    )
    client_ctx = (
        None if in_clear else client_context(ca, cert.cert, cert.key, keylog_file=keylog_file)
    )
    return await KeyChannel.start(
        mixer,
        host=host,
        server_ctx=server_ctx,
        client_ctx=client_ctx,
        server_hostname=domain,
        # The focus presents the service certificate; a participant's is refused.
        peer_name=None if {ANY_CLIENT_DEFECT, NO_CLIENT_AUTH_DEFECT} & defects else domain,
    )
