"""How a client of the suite starts: its TLS client context and its user agent.

Participants, probes and attackers differ only in the identity they show, the certificate they
present and the credentials they answer a challenge with; building them in one place keeps the
trust anchors, the key log and the server name the same for all of them.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from confsec.net.tls import client_context
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
