"""Where a SIP message travelled, and where the next one goes: `Flow`, `Destination`, `NextHop`.

These are values, not sockets: the trace, the dialogs and the checks keep and compare them long
after the connection they describe has gone, so they live apart from the asyncio transport.
A `Flow` is what lets a response, a NOTIFY or a re-INVITE go back the way the peer reached us
(the reference server talks to participants over the connections they opened), and what lets a
check see that a message was protected by TLS, and by which certificate.
"""

from __future__ import annotations

from dataclasses import dataclass

from confsec.net.tls import PeerCert

Address = tuple[str, int]
"""A socket address: (host, port)."""
Destination = tuple[str, str, int]
"""Where to send when there is no flow yet: (transport, host, port)."""


@dataclass(frozen=True)
class Flow:
    """One path between a local and a remote socket address, as messages travel on it."""

    transport: str
    """'udp', 'tcp' or 'tls'."""
    local: Address
    """Our (host, port)."""
    remote: Address
    """The peer's (host, port)."""
    peer_cert_der: bytes | None = None
    """The certificate the peer presented in the TLS handshake (DER), if any."""
    tls_version: str | None = None
    """Negotiated protocol, e.g. 'TLSv1.3' (None unless TLS)."""
    cipher: str | None = None
    """Negotiated cipher suite name (None unless TLS)."""

    @property
    def secure(self) -> bool:
        """True when the message travelled inside TLS."""
        return self.transport == "tls"

    @property
    def peer_identity(self) -> PeerCert | None:
        """The identity in the peer's certificate (subject CN, SAN DNS names and URIs)."""
        return PeerCert.from_der(self.peer_cert_der) if self.peer_cert_der else None

    @property
    def reliable(self) -> bool:
        """True on stream transports, where SIP does not retransmit (RFC 3261 §17)."""
        return self.transport != "udp"

    def __str__(self) -> str:
        return (
            f"{self.transport}:{self.local[0]}:{self.local[1]}<->{self.remote[0]}:{self.remote[1]}"
        )


NextHop = Flow | Destination
"""Where a request goes next: an existing flow (a connection to reuse, or a UDP path), or a
destination to connect to first."""
