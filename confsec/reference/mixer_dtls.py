"""The mixer's DTLS-SRTP associations (RFC 5764): one per medium of a leg, per key epoch.

The focus hands the mixer a `DtlsSetup` (identity, role, the participant's fingerprints, the
association's tls-id); the mixer runs the handshake on the stream's own UDP socket (RFC 7983
demultiplexing: DTLS and SRTP share the port) and, once it completes, keys the stream's SRTP
with the exported keys. Until then the stream sends nothing and mixes nothing: no media flows
before the handshake completes. A rekey is a new association (a new tls-id); the stream keeps
its old keys until the new handshake completes, so media does not stall meanwhile.
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
        self.driver.datagram(data)

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
