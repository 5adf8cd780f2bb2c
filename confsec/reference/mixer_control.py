"""What the focus tells the mixer: the control interface of the reference's SRTP mixer (O1).

The mixer never chooses keys. The focus (the AS/MRFC role of TR 33.829 5.1.2) allocates the
mixer's ports for a leg, then hands over the keys of every stream of it: a participant's own
keys, the conference's group key for the common stream, and, at each rekey, the next epoch's
keys of a leg already installed. These types are all that crosses from the focus to the mixer
(MRFP), which is why the key channel (`keychannel.py`) can serialise exactly them and nothing
else; they import nothing of the mixer itself so that the focus side never depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from confsec.codec.sdp import CryptoAttribute

RTCP_SUFFIX = "/rtcp"
"""`allocate()` names a stream's own RTCP port `audio/rtcp` beside `audio` (RFC 3605)."""
COMMON_MEDIA = "common"
"""The `StreamSetup.media` of the group-keyed common stream (R5): send-only, one key for all."""


@dataclass(frozen=True)
class SrtpKeys:
    """Keys for one direction of one stream, as handed from the focus to the mixer."""

    suite: str
    key: bytes = field(repr=False)
    salt: bytes = field(repr=False)

    @classmethod
    def from_crypto(cls, c: CryptoAttribute) -> SrtpKeys:
        return cls(c.suite, c.key, c.salt)


@dataclass(frozen=True)
class DtlsSetup:
    """A DTLS-SRTP association the mixer runs for one medium of one leg (RFC 5763/5764).

    The focus chooses the identity and signals its fingerprint, as it chooses SDES keys: the
    mixer stays a media engine that never decides anything about keys. Its keys come out of
    the handshake, so a `StreamSetup` with `dtls` carries no `rx`/`tx`.
    """

    role: str
    """'client' (a=setup:active, the mixer sends the ClientHello) or 'server' (passive)."""
    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
    peer_fingerprints: tuple[str, ...]
    """The participant's a=fingerprint values: the certificate it presents must match one."""
    tls_id: str
    """RFC 8842: a new value means a new association (a rekey); the same one keeps it."""
    check_fingerprint: bool = True
    """False is the `dtls-no-fingerprint-check` defect: any certificate is taken."""


@dataclass(frozen=True)
class StreamSetup:
    """What the focus tells the mixer about one medium of one leg."""

    media: str
    payload_type: int
    remote: tuple[str, int] | None
    rx: SrtpKeys | None  # the participant's sending key; None = plain RTP admitted
    tx: SrtpKeys | None  # the focus's sending key for this participant; None = plain RTP
    tx_ssrc: int
    epoch: int = 1
    """The conference key epoch these keys belong to (rekeying, R6): names ledger records."""
    dtls: DtlsSetup | None = None
    """DTLS-SRTP keying instead of `rx`/`tx` (the reference's dtls-srtp mode)."""
    rtcp_remote: tuple[str, int] | None = None
    """The participant's RTCP address where it does not mux (RFC 3605); None: rtcp-mux."""


@dataclass(frozen=True)
class LegSetup:
    conference_id: str
    leg_id: str
    streams: tuple[StreamSetup, ...]


CONTROL_TYPES: tuple[type, ...] = (SrtpKeys, DtlsSetup, StreamSetup, LegSetup)
"""Every value type a control call carries; the key channel accepts these and no others."""


class MixerControl(Protocol):
    """The focus -> mixer interface (O1): ports are allocated first, keys installed after."""

    async def allocate(
        self, conference_id: str, leg_id: str, media: tuple[str, ...]
    ) -> dict[str, tuple[str, int]]: ...

    def install(self, setup: LegSetup) -> None: ...

    def release(self, conference_id: str, leg_id: str) -> None: ...
