"""A hostile system under test: a loopback SIP/TLS server that misbehaves one way per mode.

Each mode is one way a target can fail the suite. The server runs its own asyncio loop in a daemon
thread, so a test can start it, point `confsec run --target` at it through the profile that
`write_profile` writes (CA of a fresh `TestPki`, passwords in environment variables), and stop it.

    python -m tests.hostile.hostile_server --mode silence --workdir /tmp/h
    . /tmp/h/target.env && confsec run --target /tmp/h/target.toml --req R1

    python -m tests.hostile.hostile_server --mode srtp-bad-tag --workdir /tmp/h
    . /tmp/h/target.env && confsec run --target /tmp/h/target.toml --req R3

Modes:

- `silence`: completes the TLS handshake, then reads and never answers;
- `reset`: reads the INVITE, then resets the TCP connection (SO_LINGER 0);
- `garbage`: answers every request with random bytes instead of SIP;
- `tls-alert`: plain TCP; answers the ClientHello with a fatal handshake_failure alert;
- `expired`, `other-domain`, `self-signed`: presents that certificate of the `TestPki`, then
  stays silent;
- `drip`: answers a plausible 200 OK one byte per second;
- `huge`: answers a 200 OK that is 10 MB long (a 10 MB body, Content-Length included);
- `bad-sdp`: answers the INVITE with a well-formed 200 OK whose application/sdp body is not SDP
  (and every other request with a bodiless 200 OK);
- `srtp-silent`: a plausible focus in signalling (OPTIONS, INVITE, ACK, BYE, re-INVITE; an SDES
  offer gets 200 OK, a conference URI `;isfocus` and an answer on UDP ports it has bound, with
  a fresh key for the first acceptable offered suite; plain RTP and null ciphers get 488), that
  never sends any media;
- `srtp-bad-tag`: the same focus, sending each participant 50 SRTP packets/s of tone under the
  key of its answer, with the authentication tag of every packet corrupted;
- `refuse-all`: TLS works (the service certificate), and every request gets 403 Forbidden;
- `accept-all-silent`: TLS works, every INVITE gets 200 OK with a valid SDES answer (plain RTP
  and null offers too), every other request 200 OK, and no media is ever sent;
- `ignore-all`: TLS works, and no request is ever answered (the connection stays open).

The last three are the evidence rule's safety net: against them no scenario whose claim needs an
observation may pass (tests/hostile/test_hostile_all_requirements.py).

The `srtp-*` modes live in `srtp_focus.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import ssl
import struct
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from confsec.behaviour.conference import PARTICIPANT_ORDER
from confsec.pki import TestPki
from tests.hostile.srtp_focus import SrtpFocus

__all__ = ["ALL_USERS", "DOMAIN", "MODES", "USERS", "HostileServer", "write_profile"]

DOMAIN = "conference.example.test"
# erin: features/key_confinement.feature has her refused a plain RTP join.
USERS = ("alice", "bob", "carol", "erin", "mallory")
# Every account a scenario may name (the R6 size outline goes to guest50): for the profile that
# claims every capability, so that every requirement's scenarios run against the target.
ALL_USERS = (
    *PARTICIPANT_ORDER,
    "mallory",
    *(f"guest{n:02d}" for n in range(len(PARTICIPANT_ORDER) + 1, 51)),
)
MODES = (
    "silence",
    "reset",
    "garbage",
    "tls-alert",
    "expired",
    "other-domain",
    "self-signed",
    "drip",
    "huge",
    "bad-sdp",
    "srtp-silent",
    "srtp-bad-tag",
    "refuse-all",
    "accept-all-silent",
    "ignore-all",
)
CERT_MODES = {"expired": "expired", "other-domain": "other-domain", "self-signed": "self-signed"}
HUGE = 10 * 1024 * 1024
# A TLS 1.2 record: alert, fatal (2), handshake_failure (40).
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"


class HostileServer:
    """One hostile listener on 127.0.0.1; `start()` returns the port."""

    def __init__(self, mode: str, pki: TestPki):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode
        self.pki = pki
        self.port = 0
        self.connections = 0
        self.requests: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.foci: list[SrtpFocus] = []

    def __enter__(self) -> HostileServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> int:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = fut.result(10)
        return self.port

    def stop(self) -> None:
        async def _shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _ssl(self) -> ssl.SSLContext | None:
        if self.mode == "tls-alert":
            return None
        pair = self.pki.server(CERT_MODES.get(self.mode, "service"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair.cert, pair.key)
        return ctx

    async def _listen(self) -> int:
        ctx = self._ssl()
        extra = {"ssl": ctx, "ssl_handshake_timeout": 10} if ctx else {}
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, **extra)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await getattr(self, "_" + self.mode.replace("-", "_"), self._silence)(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    # -- behaviours ----------------------------------------------------------------------------

    async def _request(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next whole request (head and Content-Length body), or None at end of stream."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value.strip() or 0)
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body

    async def _silence(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    _expired = _other_domain = _self_signed = _ignore_all = _silence

    async def _refuse_all(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await self._request(reader)) is not None:
            if req.startswith(b"ACK "):
                continue
            writer.write(_response(req, b"", status=b"403 Forbidden"))
            await writer.drain()

    async def _accept_all_silent(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        focus = SrtpFocus(
            DOMAIN,
            send_media=False,
            accept_all=True,
            spawn=self._spawn,
            record=self.requests.append,
        )
        self.foci.append(focus)
        await focus.serve(reader, writer)

    async def _reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await self._request(reader)) is not None:
            if req.startswith(b"INVITE "):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return  # _accept aborts the transport: with linger 0 that is an RST

    async def _garbage(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await self._request(reader) is not None:
            writer.write(b"\x00\xff" + os.urandom(4094))
            await writer.drain()

    async def _tls_alert(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the ClientHello
        writer.write(TLS_ALERT)
        await writer.drain()

    async def _drip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await self._request(reader)) is not None:
            for i in range(len(data := _response(req, _SDP_LIKE))):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(1.0)

    async def _huge(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await self._request(reader)) is not None:
            writer.write(_response(req, b"v=0\r\n" + b"a=x\r\n" * ((HUGE - 5) // 5)))
            await writer.drain()

    async def _bad_sdp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await self._request(reader)) is not None:
            if req.startswith(b"ACK "):
                continue
            body = b"this is not SDP {\x00\x01}\r\n<html>hello</html>\r\n"
            writer.write(_response(req, body if req.startswith(b"INVITE ") else b""))
            await writer.drain()

    async def _srtp_silent(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await self._srtp_focus(send_media=False).serve(reader, writer)

    async def _srtp_bad_tag(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await self._srtp_focus(send_media=True).serve(reader, writer)

    def _srtp_focus(self, *, send_media: bool) -> SrtpFocus:
        focus = SrtpFocus(
            DOMAIN, send_media=send_media, spawn=self._spawn, record=self.requests.append
        )
        self.foci.append(focus)
        return focus

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task that `stop()` cancels with the connections (the media senders)."""
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def media_packets(self) -> int:
        """SRTP packets the `srtp-*` modes sent, over every connection."""
        return sum(f.packets_sent for f in self.foci)


_SDP_LIKE = (
    b"v=0\r\no=focus 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/SAVP 0\r\n"
)


def _response(request: bytes, body: bytes, status: bytes = b"200 OK") -> bytes:
    """A 200 OK (or `status`) to `request` that echoes its dialog headers and carries `body`
    as SDP."""
    copied = []
    for line in request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name = line.partition(b":")[0].strip().lower()
        if name in (b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq"):
            copied.append(line)
        elif name in (b"to", b"t"):
            tag = b"" if b"tag=" in line else b";tag=" + secrets.token_hex(4).encode()
            copied.append(line + tag)
    head = [
        b"SIP/2.0 " + status,
        *copied,
        f"Contact: <sips:conf-{secrets.token_hex(4)}@{DOMAIN};transport=tls>;isfocus".encode(),
    ]
    if body:
        head.append(b"Content-Type: application/sdp")
    head.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def write_profile(
    directory: Path,
    port: int,
    pki: TestPki,
    timeouts: tuple[float, float, float] = (2, 3, 3),
    *,
    claim_all: bool = False,
    key_management: str = "sdes",
) -> tuple[Path, dict[str, str]]:
    """Write `target.toml` (and `target.env`) for a hostile server on `port`.

    `claim_all`: the capability statement claims everything (mutual TLS, group keys, event
    package, floor control, a rekey latency bound, an internal key interface on the same port)
    and lists every account a scenario may use, so that no scenario is skipped as not
    applicable: the run then tests every requirement against the hostile behaviour. The PKI
    must hold client certificates for `ALL_USERS` then. `key_management` is what the statement
    claims (the hostile server answers SDES whatever it is offered).

    Returns the profile's path and the environment variables that hold the passwords.
    """
    users = ALL_USERS if claim_all else USERS
    env = {f"CONFSEC_HOSTILE_{u.upper()}_PASSWORD": secrets.token_urlsafe(12) for u in users}
    connect, transaction, media = timeouts
    lines = [
        "[target]",
        'name = "confsec hostile target"',
        f'domain = "{DOMAIN}"',
        "",
        "[signalling]",
        'host = "127.0.0.1"',
        f"port = {port}",
        'transport = "tls"',
        "",
        "[conference]",
        f'factory_uri = "sips:conf-factory@{DOMAIN}"',
        "",
        "[tls]",
        f'ca_file = "{pki.ca_cert}"',
        "",
        "[timeouts]",
        f"connect = {float(connect)}",
        f"transaction = {float(transaction)}",
        f"media = {float(media)}",
        "",
        "[capabilities]",
        f'key_management = "{key_management}"',
        f"mutual_tls = {str(claim_all).lower()}",
        "video = false",
    ]
    if claim_all:  # dial-out and REFER too: the hostile server never calls, nothing may pass
        lines.append('creation_modes = ["dial-in-factory", "dial-out", "refer"]')
    else:
        lines.append('creation_modes = ["dial-in-factory"]')
    if claim_all:
        lines += [
            "group_keys = true",
            "event_package = true",
            "floor_control = true",
            "restricted_membership = true",
            "rekey_latency_bound = 1.0",
            "lost_participant_timeout = 2.5",
            f'internal_interfaces = [{{name = "key channel", host = "127.0.0.1", port = {port}, '
            f'server_name = "{DOMAIN}"}}]',
        ]
    for user in users:
        lines += [
            "",
            f"[accounts.{user}]",
            f'username = "{user}"',
            f'password_env = "CONFSEC_HOSTILE_{user.upper()}_PASSWORD"',
        ]
        if claim_all:
            pair = pki.client(user)
            lines += [f'client_cert = "{pair.cert}"', f'client_key = "{pair.key}"']
    directory.mkdir(parents=True, exist_ok=True)
    profile = directory / "target.toml"
    profile.write_text("\n".join(lines) + "\n")
    env_file = profile.with_suffix(".env")
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    return profile, env


def add_dictionary(profile: Path, workdir: Path) -> None:
    """A short password dictionary in the profile, so that the dictionary scenario runs too."""
    (workdir / "words.txt").write_text("123456\npassword\n")
    with profile.open("a") as f:
        f.write(f'\n[probes]\ndictionary = "{workdir / "words.txt"}"\n')


def make_pki(directory: Path, users: tuple[str, ...] = USERS) -> TestPki:
    return TestPki.create(directory, DOMAIN, users)


def main() -> None:
    ap = argparse.ArgumentParser(description="a hostile SIP/TLS target on loopback")
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    args = ap.parse_args()
    pki = make_pki(args.workdir / "pki")
    server = HostileServer(args.mode, pki)
    port = server.start()
    profile, _ = write_profile(args.workdir, port, pki)
    print(f"hostile target ({args.mode}) on 127.0.0.1:{port}; profile {profile}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
