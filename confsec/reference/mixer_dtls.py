"""The mixer's DTLS-SRTP associations (RFC 5764): one per medium of a leg, per key epoch.

The focus hands the mixer a `DtlsSetup` (identity, role, the participant's fingerprints, the
association's tls-id); the mixer runs the handshake on the stream's own UDP socket (RFC 7983
demultiplexing: DTLS and SRTP share the port) and, once it completes, keys the stream's SRTP
with the exported keys. Until then the stream sends nothing and mixes nothing: no media flows
before the handshake completes. A rekey is a new association (a new tls-id); the stream keeps
its old keys until the new handshake completes, so media does not stall meanwhile.

A server association remembers the random of the ClientHello it answers (`hello_random`): a
ClientHello with another one is a newer association's, which the participant began after it
answered a later re-offer, and `mixer_leg` keeps it for that association instead of feeding it
to this one (which would drop it, leaving the participant to resend it a second later). So is
any ClientHello once this association has failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from confsec.media.dtls import (
    DtlsSrtpEndpoint,
    HandshakeCompleted,
    HandshakeFailed,
    SrtpKeys,
)
from confsec.media.dtls_demux import client_hello_random
from confsec.media.dtls_leg import DtlsDriver
from confsec.reference.mixer_control import DtlsSetup

log = logging.getLogger(__name__)

__all__ = ["LegAssociation"]


class LegAssociation:
    """One association of one leg stream; `on_keys` gets its exported keys on completion."""

    def __init__(
        self,
        setup: DtlsSetup,
        send: Callable[[bytes], None],
        on_keys: Callable[[SrtpKeys], None],
        name: str,
    ) -> None:
        self.setup = setup
        self.name = name
        self.failure: str | None = None
        self.hello_random: bytes | None = None
        """Server side: the random of the first ClientHello this association took."""
        self._on_keys = on_keys
        certificate = x509.load_pem_x509_certificate(setup.certificate_pem)
        key = load_pem_private_key(setup.private_key_pem, password=None)
        self.endpoint = DtlsSrtpEndpoint(
            setup.role,  # type: ignore[arg-type]
            certificate,
            key,  # type: ignore[arg-type]
            expected_fingerprint=list(setup.peer_fingerprints) or None,
            check_fingerprint=setup.check_fingerprint and bool(setup.peer_fingerprints),
            cookies=False,  # the focus told the mixer whom to expect: no address to verify
        )
        self.driver = DtlsDriver(
            self.endpoint, send, asyncio.get_running_loop(), on_event=self._event
        )

    def start(self) -> None:
        self.driver.start()

    def datagram(self, data: bytes) -> None:
        if self.hello_random is None and self.setup.role == "server":
            self.hello_random = client_hello_random(data)
        self.driver.datagram(data)

    def foreign_hello(self, data: bytes) -> bool:
        """`data` holds a ClientHello this association cannot answer: another client's than
        the one it answers, or any once it has failed (a newer association's: see the module
        docstring)."""
        random = client_hello_random(data)
        if random is None:
            return False
        if self.endpoint.state in ("failed", "closed"):
            return True
        return self.hello_random is not None and random != self.hello_random

    def close(self) -> None:
        self.driver.close()

    @property
    def connected(self) -> bool:
        return self.endpoint.state == "connected"

    def _event(self, event: object) -> None:
        if isinstance(event, HandshakeCompleted):
            log.info("DTLS association %s up (%s)", self.name, event.profile)
            self._on_keys(self.endpoint.srtp_keys())
        elif isinstance(event, HandshakeFailed):
            self.failure = event.reason
            log.info("DTLS association %s failed: %s", self.name, event.reason)
