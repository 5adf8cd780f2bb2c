"""What became of what the suite tried: an INVITE, a TLS connection.

Plain records, kept apart from the conference that produces them so that the checks that judge
them need not import the machinery that drove them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confsec.codec.sdp import SessionDescription
from confsec.codec.sip import Response
from confsec.net.dialog import Dialog
from confsec.net.tls import PeerCert


@dataclass
class CallOutcome:
    """What became of one INVITE: the final response, or why there was none."""

    participant: str
    request_uri: str
    status: int | None = None
    reason: str = ""
    response: Response | None = None
    answer: SessionDescription | None = None
    error: str | None = None
    responses: list[Response] = field(default_factory=list)
    """Every response to the INVITE, provisional ones included (keys may come in early media)."""
    dialog: Dialog | None = None
    """The dialog a 2xx established."""
    dtls_failure: str | None = None
    """DTLS-SRTP: why a media leg's handshake did not complete after the 2xx (no keys)."""
    dtls_suites: dict[str, str] = field(default_factory=dict)
    """DTLS-SRTP: per medium, the suite of the protection profile the handshake selected."""

    @property
    def admitted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class TlsProbe:
    """A TLS connection attempt to the service, and what came of it."""

    connect_error: str | None = None
    handshake_ok: bool = False
    tls_error: str | None = None
    peer: PeerCert | None = None
    response_status: int | None = None
    closed_by_peer: bool = False
    cert_rejected: bool = False
    """The handshake failed because the suite rejected the peer's certificate (not an alert)."""
    alert: str | None = None
    """The handshake ended in a TLS alert from the peer. The client verifies the server's
    certificate before it sends its own flight, so an alert means the peer speaks TLS with a
    certificate the suite accepted, and refused something of ours (e.g. our certificate)."""
    identity_error: str | None = None
    """The peer's certificate could not be read after the handshake (not a close by itself)."""
    close_watch_s: float = 0.0
    """How long the probe waited on the peer for a close (a protocol window of the scenario)."""
    presented: str = "no certificate"
    """The client certificate the suite presented, in words ("bob's certificate, expired")."""

    @property
    def refusal(self) -> str:
        """How the peer ended the connection, in words: an alert in the handshake, or a close
        after it (TLS 1.3 refuses a client certificate there) with what the close carried."""
        if self.alert:
            return f"alert {self.alert}"
        return "closed after the handshake" + (f" ({self.tls_error})" if self.tls_error else "")

    @property
    def server_verified(self) -> bool:
        """The peer presented a certificate valid for its name, whatever it made of ours."""
        return self.handshake_ok or self.alert is not None
