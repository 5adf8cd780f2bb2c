"""DTLS-SRTP keying in the reference focus (RFC 5763, RFC 5764, RFC 8842): the SDP side.

In its dtls-srtp mode the focus keys a participant's media with a DTLS association between the
participant and the mixer instead of SDES keys. The focus still decides, as it does for SDES:
it makes a fresh identity (a self-signed certificate, as RFC 5763 section 5 allows) for every
association, signals its fingerprint, the role (`a=setup`) and the association's `a=tls-id`,
and hands the mixer a `DtlsSetup`. The keys then come out of the handshake in the mixer; no SRTP
key ever crosses the signalling.

A rekey (R6) is a new association: the re-offer carries a new identity and a new `a=tls-id`
(RFC 8842 section 5), the answer's `a=setup` decides who is the client, and the mixer keeps the
old keys until the new handshake completes. The defect switches of this mode are branches here:
`dtls-no-fingerprint-check` (the mixer takes any certificate) and `dtls-rekey-keeps-association`
(a re-offer repeats the identity and `a=tls-id`, so nothing is rekeyed).
"""

from __future__ import annotations

from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from confsec.codec.sdp import (
    MediaDescription,
    SdpParseError,
    SetupRole,
    answer_role,
    dtls_role,
    new_tls_id,
)
from confsec.media.dtls import fingerprint_of, self_signed_identity
from confsec.reference.mixer_control import DtlsSetup

__all__ = [
    "NO_FINGERPRINT_CHECK",
    "REKEY_KEEPS_ASSOCIATION",
    "answer_attributes",
    "answered",
    "new_association",
    "offer_attributes",
    "rekeyed",
]

NO_FINGERPRINT_CHECK = "dtls-no-fingerprint-check"
REKEY_KEEPS_ASSOCIATION = "dtls-rekey-keeps-association"


def _identity() -> tuple[bytes, bytes, str]:
    cert, key, fingerprint = self_signed_identity("confsec-mixer")
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        fingerprint,
    )


def _fingerprint_of(setup: DtlsSetup) -> str:
    return fingerprint_of(x509.load_pem_x509_certificate(setup.certificate_pem))


def _peer_fingerprints(m: MediaDescription) -> tuple[str, ...]:
    try:
        return tuple(f.to_value() for f in m.fingerprints if f.is_acceptable_hash)
    except SdpParseError:
        return ()


def new_association(offered: MediaDescription, defects: frozenset[str]) -> DtlsSetup:
    """The mixer's side of a new association answering `offered` (a participant's offer).

    The answerer takes the active role when offered actpass (RFC 5763 section 5: SHOULD), so
    the mixer sends the ClientHello to the address of the offer as soon as it is installed."""
    cert_pem, key_pem, _ = _identity()
    offered_role = offered.setup or SetupRole.ACTPASS
    return DtlsSetup(
        role=dtls_role(answer_role(offered_role)),
        certificate_pem=cert_pem,
        private_key_pem=key_pem,
        peer_fingerprints=_peer_fingerprints(offered),
        tls_id=new_tls_id(),
        check_fingerprint=NO_FINGERPRINT_CHECK not in defects,
    )


def answer_attributes(setup: DtlsSetup) -> list[tuple[str, str | None]]:
    """The answer's a=fingerprint, a=setup and a=tls-id for the association `setup`."""
    role = SetupRole.ACTIVE if setup.role == "client" else SetupRole.PASSIVE
    return [
        ("fingerprint", _fingerprint_of(setup)),
        ("setup", str(role)),
        ("tls-id", setup.tls_id),
    ]


def rekeyed(previous: DtlsSetup, defects: frozenset[str]) -> DtlsSetup:
    """The next association of a stream, offered in the focus's re-INVITE (a rekey).

    Its role is settled by the participant's answer (`answered`). The
    `dtls-rekey-keeps-association` defect offers the same identity and tls-id again, which
    RFC 8842 section 5 reads as "keep the association": the keys never change."""
    if REKEY_KEEPS_ASSOCIATION in defects:
        return previous
    cert_pem, key_pem, _ = _identity()
    return replace(previous, certificate_pem=cert_pem, private_key_pem=key_pem, tls_id=new_tls_id())


def offer_attributes(setup: DtlsSetup, previous: DtlsSetup) -> list[tuple[str, str | None]]:
    """The re-offer's DTLS lines: actpass for a new association, the old role for the same one
    (RFC 5763 section 5: a re-offer that keeps the association keeps the roles)."""
    if setup.tls_id == previous.tls_id:
        role = SetupRole.ACTIVE if setup.role == "client" else SetupRole.PASSIVE
    else:
        role = SetupRole.ACTPASS
    return [
        ("fingerprint", _fingerprint_of(setup)),
        ("setup", str(role)),
        ("tls-id", setup.tls_id),
    ]


def answered(setup: DtlsSetup, previous: DtlsSetup, answer: MediaDescription) -> DtlsSetup:
    """`setup` completed by the participant's answer to the re-offer: its role and identity.

    An answer whose `a=setup` is missing or unusable leaves the association as it was."""
    if setup.tls_id == previous.tls_id:
        return setup
    try:
        theirs = answer.setup
    except SdpParseError:
        return previous
    if theirs not in (SetupRole.ACTIVE, SetupRole.PASSIVE):
        return previous
    role = "server" if theirs == SetupRole.ACTIVE else "client"
    fingerprints = _peer_fingerprints(answer) or setup.peer_fingerprints
    return replace(setup, role=role, peer_fingerprints=fingerprints)
