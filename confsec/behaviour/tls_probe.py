"""One TLS connection to the service or to an internal key interface, and what came of it.

The probe reads what the peer did at every stage (connect, handshake, certificate, a request,
a close) into a `TlsProbe`, so that the checks can tell a refusal from an unreachable server,
and an alert in the handshake (TLS 1.2) from a close right after it (TLS 1.3).
"""

from __future__ import annotations

import asyncio
import secrets
import ssl

from confsec.behaviour.outcomes import TlsProbe
from confsec.codec.sip import Request, Response, SipStream
from confsec.errors import LocalProtocolError
from confsec.net.startup import client_ssl_context
from confsec.net.tls import peer_identity
from confsec.target.model import Account, InternalInterface, Target

INTERFACE_CLOSE_WATCH_S = 2.0
"""How long a TLS connection to an internal key interface is watched for a refusal (a close)."""


async def tls_probe(
    target: Target,
    keylog: str,
    account: Account | None,
    send_request: bool,
    *,
    where: InternalInterface | None = None,
    await_close: float = 0.0,
    presented: str | None = None,
) -> TlsProbe:
    """Open TLS to the service (or to the internal interface `where`) and see what happens.

    `send_request` sends an OPTIONS and reads the answer; `await_close` reads for that long
    to see whether the peer closes, which is how TLS 1.3 shows a refused client certificate.
    `presented` says in words which client certificate `account` carries, for the evidence.
    """
    probe = TlsProbe()
    if presented is not None:
        probe.presented = presented
    elif account is not None and account.client_cert is not None:
        probe.presented = f"{account.name}'s certificate"
    ctx: ssl.SSLContext = client_ssl_context(target, account, keylog)
    t = target.timeouts
    host, port, name = (
        (where.host, where.port, where.server_name)
        if where is not None
        else (target.host, target.port, target.domain)
    )
    if where is not None:
        # An interface that is not TLS at all resets or stalls the handshake: reach it over
        # plain TCP first, so that such a failure is judged as "not TLS", not "unreachable".
        try:
            _, raw = await asyncio.wait_for(asyncio.open_connection(host, port), t.connect)
            raw.close()
        except (OSError, TimeoutError) as exc:
            probe.connect_error = str(exc) or type(exc).__name__
            return probe
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=name),
            t.connect,
        )
    except ssl.SSLError as exc:
        probe.tls_error = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        probe.cert_rejected = isinstance(exc, ssl.SSLCertVerificationError)
        if not probe.cert_rejected and "ALERT" in (exc.reason or "").upper():
            probe.alert = exc.reason
        return probe
    except (OSError, TimeoutError) as exc:
        if where is None:
            probe.connect_error = str(exc) or type(exc).__name__
        else:
            probe.tls_error = f"no TLS handshake ({type(exc).__name__}: {exc})"
        return probe
    probe.handshake_ok = True
    sslobj = writer.get_extra_info("ssl_object")
    try:
        # The peer may already have closed (a refused client certificate): no identity then.
        probe.peer = peer_identity(sslobj) if sslobj is not None else None
    except (ValueError, OSError, ssl.SSLError, LocalProtocolError) as exc:
        # LocalProtocolError: the session is gone before its certificate could be read
        # (kamailio's alert for a missing client certificate can be that quick). That is
        # no close by itself: the read below, or the request, shows what the peer did.
        probe.identity_error = str(exc) or type(exc).__name__
    try:
        if await_close:
            watched = asyncio.get_running_loop().time()
            try:
                probe.closed_by_peer = not await asyncio.wait_for(reader.read(1), await_close)
            finally:
                # Watching for the close is waiting on the peer, up to the window.
                elapsed = asyncio.get_running_loop().time() - watched
                probe.close_watch_s = min(elapsed, await_close)
        if send_request:
            writer.write(_options_request(target))
            await writer.drain()
            stream = SipStream()
            while True:
                data = await asyncio.wait_for(reader.read(65536), t.transaction)
                if not data:
                    probe.closed_by_peer = True
                    break
                stream.feed(data)
                msg = stream.next_message()
                if isinstance(msg, Response):
                    probe.response_status = msg.status
                    break
    except (ssl.SSLError, ConnectionError) as exc:
        probe.closed_by_peer = True
        probe.tls_error = str(exc)
    except TimeoutError:
        pass
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, ssl.SSLError, TimeoutError):
            pass
    return probe


def _options_request(target: Target) -> bytes:
    """An OPTIONS for the raw TLS probe, built with the codec (no UA: the probe watches TLS).
    It asks the factory, or the domain where the target has none (it only calls out)."""
    uri = target.factory_uri or f"sips:{target.domain}"
    return Request(
        "OPTIONS",
        uri,
        [
            ("Via", f"SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bK{secrets.token_hex(8)};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sips:probe@{target.domain}>;tag={secrets.token_hex(4)}"),
            ("To", f"<{uri}>"),
            ("Call-ID", f"{secrets.token_hex(8)}@confsec"),
            ("CSeq", "1 OPTIONS"),
        ],
    ).to_bytes()
