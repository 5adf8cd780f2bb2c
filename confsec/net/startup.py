"""How a client of the suite starts: its TLS client context and its user agent.

Participants, probes and attackers differ only in the identity they show, the certificate they
present and the credentials they answer a challenge with; building them in one place keeps the
trust anchors, the key log and the server name the same for all of them.
"""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

from confsec.errors import ConfigError, TransportError
from confsec.net.incoming import IncomingHandler
from confsec.net.tls import client_context, server_context
from confsec.net.ua import UserAgent
from confsec.target.model import Account, Target


def client_ssl_context(target: Target, account: Account | None, keylog: str) -> ssl.SSLContext:
    cert = account.client_cert if account else None
    key = account.client_key if account else None
    return client_context(target.ca_file, cert, key, keylog_file=keylog)


async def start_ua(
    target: Target,
    keylog: str | Path,
    *,
    shown: Account,
    cert: Account | None,
    credentials: tuple[str, str] | None,
) -> UserAgent:
    """A user agent that speaks to `target` as `shown` (AOR and display name), presenting
    `cert`'s client certificate and answering digest challenges with `credentials` (None: it
    has none). Participants, probes and attackers all differ only in these three."""
    return await UserAgent.start(
        aor=shown.aor(target.domain),
        display_name=shown.display_name or shown.name.capitalize(),
        contact_host="127.0.0.1",
        credentials=credentials,
        client_ssl=client_ssl_context(target, cert, str(keylog)),
        server_hostname=target.domain,
    )


async def start_listening_ua(
    target: Target,
    keylog: str | Path,
    account: Account,
    request_handler: IncomingHandler,
) -> UserAgent:
    """A user agent for `account` that the service can call (dial-out): it listens over TLS with
    the account's certificate and asks the caller for one from the target's CA (a caller that
    presents none still connects, and the participant then refuses its INVITE: a refusal the
    suite can see and report, where a TLS alert would only say that something failed). It also
    listens on plain UDP at the same port number, where a conformant service never sends: what
    arrives there is recorded in its trace like anything else.

    It answers digest challenges and calls out like any participant (`start_ua`).
    """
    if account.client_cert is None:
        raise ConfigError(
            f"{account.name} must listen over TLS to be called, and has no certificate: give "
            f"client_cert and client_key in [accounts.{account.name}] of the target profile"
        )
    server_ssl = server_context(
        account.client_cert, account.client_key, ca_file=target.ca_file, keylog_file=str(keylog)
    )
    ua = await UserAgent.start(
        aor=account.aor(target.domain),
        display_name=account.display_name or account.name.capitalize(),
        contact_host="127.0.0.1",
        transport=[("tls", "127.0.0.1", 0)],
        server_ssl=server_ssl,
        credentials=(account.username, account.password),
        client_ssl=client_ssl_context(target, account, str(keylog)),
        server_hostname=target.domain,
        request_handler=request_handler,
    )
    port = ua.address("tls")[2]
    with contextlib.suppress(TransportError):  # the trap is a bonus, not a precondition
        await ua.transport.listen_udp("127.0.0.1", port)
    return ua
