"""The pure half of DTLS-SRTP for `confsec.media.dtls`: framing, profiles, keys, events.

Everything here is a function of its arguments, with no OpenSSL connection and no clock. The
wire is read by the codecs, not here: records, handshake fragments, the ClientHello and its
`use_srtp` offer by `confsec.codec.dtls`, and `a=fingerprint` values by
`confsec.codec.sdp.FingerprintAttribute`. What is left is what only an endpoint needs:

- `classify()`: what a datagram on a shared port is (RFC 7983).
- Record framing for OpenSSL. Run on memory BIOs, OpenSSL hands out a whole flight as one byte
  string and takes whatever it is given as one "packet". A datagram endpoint has to cut a flight
  at record boundaries and pack whole records into datagrams no bigger than the path MTU (RFC
  6347 section 4.1.1: a record never spans datagrams), and feed what arrives one record at a
  time, so that a datagram larger than OpenSSL's read buffer cannot leave it mid-record.
  `frame_records()` and `record_problem()` wrap the codec's parsers for that.
- Peeks and alerts. The `use_srtp` offer of a ClientHello is read only to *name* what went wrong
  in a failure reason; OpenSSL decides. `alert_record()` builds the plaintext fatal alert for
  the refusals OpenSSL cannot make itself (no SRTP profile in common), which a peer can read
  only while it is still in epoch 0.
- Protection profiles under OpenSSL's names (the ones `set_tlsext_use_srtp` takes), their
  `a=crypto` suite names (key and salt lengths come from `confsec.codec.sdp.SRTP_SUITES`);
  `negotiation_problem()`, the verdict on what a handshake selected; `SrtpKeys`, which never
  prints a key; the endpoint's events and errors.
- Fingerprints: what an endpoint is told to expect, held against the peer's certificate with
  `certificate_matches` (RFC 8122 section 5.1) and named in a failure reason; `fingerprint_of()`
  and the self-signed identities DTLS-SRTP endpoints use (RFC 5763 section 5).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from confsec.codec import dtls as wire
from confsec.codec.sdp import (
    HASH_LENGTHS,
    SRTP_SUITES,
    FingerprintAttribute,
    certificate_matches,
)
from confsec.errors import RemoteProtocolError
from confsec.media.ledger import key_fingerprint
from confsec.media.srtp import UnsupportedSuite

__all__ = [
    "DEFAULT_PROFILES",
    "MIN_MTU",
    "NULL_PROFILES",
    "PROFILE_KEYS",
    "ConnectionClosed",
    "DatagramKind",
    "DtlsError",
    "DtlsEvent",
    "Fingerprints",
    "HandshakeCompleted",
    "HandshakeFailed",
    "SrtpKeys",
    "alert_name",
    "alert_record",
    "classify",
    "client_hello_srtp_profiles",
    "fingerprint_of",
    "fingerprint_problem",
    "frame_records",
    "negotiation_problem",
    "pack_datagrams",
    "peer_fingerprint",
    "profile_name",
    "record_problem",
    "self_signed_identity",
    "settings_problem",
    "signalled_fingerprints",
    "suite_for_profile",
]

_HEADER = struct.Struct("!BHH6sH")


def alert_name(level: int, description: int) -> str:
    """'fatal bad_certificate (42)': how a failure reason names an alert."""
    lv = {1: "warning", 2: "fatal"}.get(level, f"level-{level}")
    return f"{lv} {wire.ALERT_NAMES.get(description, 'unknown')} ({description})"


# -- records -----------------------------------------------------------------------------------


def frame_records(data: bytes) -> tuple[list[tuple[wire.DtlsRecord, bytes]], int]:
    """The records at the start of `data`, each with its own octets, and how many octets followed.

    Stops at the first header the codec refuses (not DTLS 1.x, a length past the end or past
    the TLS limit): what follows cannot be framed (RFC 6347 section 4.1.2.7 lets a receiver
    drop it silently; the caller counts it).
    """
    out: list[tuple[wire.DtlsRecord, bytes]] = []
    end = 0
    try:
        for rec in wire.iter_records(data):
            end = rec.offset + wire.RECORD_HEADER_LEN + len(rec.fragment)
            out.append((rec, data[rec.offset : end]))
    except wire.DtlsParseError:
        pass
    return out, len(data) - end


def record_problem(record: wire.DtlsRecord) -> str | None:
    """Why a framed record must not reach OpenSSL; else None.

    A plaintext handshake record must hold whole fragments that fit their messages. OpenSSL
    would end the handshake on it ("bad length"), so one spoofed datagram could kill it; RFC
    6347 section 4.1.2.7 lets a receiver discard such records silently.
    """
    if record.content_type != wire.HANDSHAKE or record.epoch != 0:
        return None
    try:
        wire.parse_handshake(record.fragment)
    except wire.DtlsParseError as exc:
        return exc.reason
    return None


def client_hello_srtp_profiles(record: wire.DtlsRecord) -> tuple[int, ...] | None:
    """The profile code points a plaintext ClientHello record offers in `use_srtp`.

    () when it carries no `use_srtp`; None when the record holds no whole ClientHello that
    parses (then the offer is simply not known).
    """
    if record.content_type != wire.HANDSHAKE or record.epoch != 0:
        return None
    try:
        for msg in wire.parse_handshake(record.fragment):
            if msg.msg_type == wire.CLIENT_HELLO and msg.complete:
                offer = wire.parse_client_hello(msg.body).use_srtp
                return () if offer is None else offer.profiles
    except wire.DtlsParseError:
        return None
    return None


def pack_datagrams(records: list[bytes], mtu: int) -> list[bytes]:
    """Whole records packed greedily, in order, into datagrams of at most `mtu` octets.

    A record longer than `mtu` on its own (OpenSSL keeps to the MTU it is given, so only a
    misconfiguration makes one) goes out alone rather than being cut.
    """
    out: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for rec in records:
        if cur and size + len(rec) > mtu:
            out.append(b"".join(cur))
            cur, size = [], 0
        cur.append(rec)
        size += len(rec)
    if cur:
        out.append(b"".join(cur))
    return out


def alert_record(version: int, epoch: int, seq: int, level: int, description: int) -> bytes:
    """A plaintext alert record (only meaningful in epoch 0, before any ChangeCipherSpec)."""
    return _HEADER.pack(wire.ALERT, version, epoch, seq.to_bytes(6, "big"), 2) + bytes(
        (level, description)
    )


# -- demultiplexing ----------------------------------------------------------------------------

DatagramKind = Literal["dtls", "rtp", "rtcp", "stun", "zrtp", "turn", "unknown"]


def _kind_of(b: int) -> DatagramKind:
    if b <= 3:
        return "stun"
    if 16 <= b <= 19:
        return "zrtp"
    if 20 <= b <= 63:
        return "dtls"
    if 64 <= b <= 79:
        return "turn"
    if 128 <= b <= 191:
        return "rtp"
    return "unknown"


_KINDS: tuple[DatagramKind, ...] = tuple(_kind_of(b) for b in range(256))


def classify(datagram: bytes) -> DatagramKind:
    """What a datagram on a shared port is, by its first byte (RFC 7983 section 7).

    RTP and RTCP share 128..191; the second byte tells them apart (RFC 5761 section 4: 192..223
    is RTCP). A lone byte in that range is neither.
    """
    if not datagram:
        return "unknown"
    kind = _KINDS[datagram[0]]
    if kind == "rtp":
        if len(datagram) < 2:
            return "unknown"
        if 192 <= datagram[1] <= 223:
            return "rtcp"
    return kind


# -- profiles ----------------------------------------------------------------------------------


def _openssl_name(rfc_name: str) -> str:
    """OpenSSL calls RFC 5764's SRTP_AES128_CM_HMAC_SHA1_80 'SRTP_AES128_CM_SHA1_80'."""
    return rfc_name.replace("_HMAC_", "_")


_OPENSSL_NAMES = {code: _openssl_name(name) for code, name in wire.SRTP_PROFILES.items()}
_SUITES = {
    "SRTP_AES128_CM_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
    "SRTP_NULL_SHA1_80": "NULL_HMAC_SHA1_80",
    "SRTP_NULL_SHA1_32": "NULL_HMAC_SHA1_32",
}
PROFILE_KEYS: dict[str, tuple[str, int, int]] = {
    name: (suite, SRTP_SUITES[suite].key_len, SRTP_SUITES[suite].salt_len)
    for name, suite in _SUITES.items()
}
"""OpenSSL profile name -> (its a=crypto suite, master key length, master salt length)."""
NULL_PROFILES = tuple(
    _OPENSSL_NAMES[c] for c in sorted(wire.SRTP_PROFILES) if wire.is_null_profile(c)
)
"""Profiles that authenticate without encrypting: never offered or accepted by default (R3)."""
DEFAULT_PROFILES = (
    "SRTP_AES128_CM_SHA1_80",
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM",
    "SRTP_AES128_CM_SHA1_32",
)
"""What the endpoint offers by default, in order of preference."""


def profile_name(code: int) -> str:
    """OpenSSL's name of a protection profile code point, or the codec's name of an unknown."""
    return _OPENSSL_NAMES.get(code) or wire.profile_name(code)


MIN_MTU = 256
"""OpenSSL ignores a smaller SSL_set_mtu on a memory BIO, then misbehaves."""


def settings_problem(
    role: str, mtu: int, profiles: tuple[str, ...], *, allow_null: bool
) -> str | None:
    """What is wrong with an endpoint's settings (a bug of the suite, not the peer); else None."""
    if role not in ("client", "server"):
        return f"DTLS role must be 'client' or 'server', not {role!r}"
    if mtu < MIN_MTU:
        return f"DTLS MTU {mtu} is below OpenSSL's minimum of {MIN_MTU}"
    unknown = [p for p in profiles if p not in PROFILE_KEYS]
    if unknown or not profiles:
        return f"unknown or no DTLS-SRTP protection profiles {unknown}"
    if not allow_null and any(p in NULL_PROFILES for p in profiles):
        return "NULL SRTP profiles are offered only with allow_null_profile"
    return None


def suite_for_profile(name: str) -> str:
    """The `a=crypto` suite name (RFC 4568 / RFC 7714) of a DTLS-SRTP protection profile.

    `confsec.media.srtp.profile_for()` takes the result (and refuses the NULL ones).
    """
    try:
        return PROFILE_KEYS[name][0]
    except KeyError:
        raise UnsupportedSuite(f"unknown DTLS-SRTP protection profile {name!r}") from None


# -- fingerprints and identities ---------------------------------------------------------------

Fingerprints = FingerprintAttribute | str | Iterable[FingerprintAttribute | str]
"""What an endpoint is told to expect: the peer's `a=fingerprint`s (RFC 8122 allows several)."""


def signalled_fingerprints(value: Fingerprints) -> tuple[FingerprintAttribute, ...]:
    """The expected fingerprints as `FingerprintAttribute`s.

    Text is parsed by `FingerprintAttribute.parse`, strictly: lower-case hex is refused with an
    `SdpParseError`, as RFC 8122 section 5 demands. Whether a peer's signalling is conformant is
    judged where the SDP is read; a caller that wants to shake hands anyway builds the
    attribute from the digest. An empty list means the signalling carried none: the handshake
    then fails (RFC 8122 section 5.1).
    """
    items = [value] if isinstance(value, FingerprintAttribute | str) else list(value)
    return tuple(FingerprintAttribute.parse(f) if isinstance(f, str) else f for f in items)


def _usable(expected: tuple[FingerprintAttribute, ...]) -> list[FingerprintAttribute]:
    """The fingerprints of the strongest acceptable hash among them (RFC 8122 section 5.1)."""
    size = {f: HASH_LENGTHS[f.hash_function.lower()] for f in expected if f.is_acceptable_hash}
    return [f for f in size if size[f] == max(size.values())]


def peer_fingerprint(der: bytes, expected: tuple[FingerprintAttribute, ...] | None) -> str:
    """The `a=fingerprint` value of the peer's certificate, in the hash the signalling chose
    (the strongest acceptable one), else sha-256."""
    usable = _usable(expected or ())
    name = usable[0].hash_function.lower() if usable else "sha-256"
    return FingerprintAttribute.of_certificate(der, name).to_value()


def fingerprint_problem(der: bytes, expected: tuple[FingerprintAttribute, ...]) -> str | None:
    """Why the peer's certificate is not the one the signalling named; None when it is."""
    if certificate_matches(expected, der):
        return None
    usable = _usable(expected)
    if not expected:
        return "the signalling carried no fingerprint (RFC 8122 section 5.1: no connection)"
    if not usable:
        said = ", ".join(f.to_value() for f in expected)
        return f"no signalled fingerprint uses an acceptable hash (RFC 8122 section 5.1): {said}"
    which = "fingerprint" if len(usable) == 1 else "fingerprints"
    return (
        f"peer certificate fingerprint {peer_fingerprint(der, expected)} does not match the "
        f"signalled {which} {', '.join(f.to_value() for f in usable)}"
    )


class DtlsError(RemoteProtocolError):
    """The DTLS-SRTP handshake failed; `reason` says why. No keys exist."""


def fingerprint_of(cert: x509.Certificate, hash_name: str = "sha-256") -> str:
    """The `a=fingerprint` value of a certificate: 'sha-256 AB:CD:...' (RFC 8122).

    `FingerprintAttribute.of_certificate` does the work; it raises `LocalProtocolError` for a
    hash it cannot compute (md2 and md5 included).
    """
    der = cert.public_bytes(serialization.Encoding.DER)
    return FingerprintAttribute.of_certificate(der, hash_name).to_value()


def self_signed_identity(
    common_name: str = "confsec",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, str]:
    """A fresh ECDSA P-256 self-signed certificate, its key and its sha-256 fingerprint.

    Valid from an hour ago (clock skew) for thirty days; one per call, as WebRTC endpoints
    make one per peer connection.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert, key, fingerprint_of(cert)


# -- keys and events ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SrtpKeys:
    """The SRTP master keys a handshake exported (RFC 5764 section 4.2), seen from one side."""

    local_key: bytes
    """Master key this side protects with (client_write_key for the client)."""
    local_salt: bytes
    remote_key: bytes
    """Master key the peer protects with: this side's receiver takes it."""
    remote_salt: bytes
    profile: str
    """The DTLS-SRTP protection profile (OpenSSL's name); `suite` is its a=crypto name."""

    @property
    def suite(self) -> str:
        return suite_for_profile(self.profile)

    @staticmethod
    def length(profile: str) -> int:
        """Octets to export for a profile: two keys and two salts."""
        _, k, s = PROFILE_KEYS[profile]
        return 2 * (k + s)

    @classmethod
    def from_export(cls, material: bytes, profile: str, role: str) -> SrtpKeys:
        """One side's keys from the exporter's output, which RFC 5764 section 4.2 orders
        client_write_key, server_write_key, client_write_salt, server_write_salt."""
        _, k, s = PROFILE_KEYS[profile]
        client = (material[:k], material[2 * k : 2 * k + s])
        server = (material[k : 2 * k], material[2 * k + s : 2 * (k + s)])
        local, remote = (client, server) if role == "client" else (server, client)
        return cls(*local, *remote, profile=profile)

    def __repr__(self) -> str:
        return (
            f"SrtpKeys({self.profile}, local {len(self.local_key)}+{len(self.local_salt)} "
            f"octets {key_fingerprint(self.local_key, self.local_salt)}, remote "
            f"{len(self.remote_key)}+{len(self.remote_salt)} octets "
            f"{key_fingerprint(self.remote_key, self.remote_salt)})"
        )


@dataclass(frozen=True)
class HandshakeCompleted:
    """Both sides finished, the profile is one we offered and the fingerprint matched.

    With the fingerprint checked, this comes only once the signalled fingerprint is known: after
    the handshake when the SDP answer comes late (`set_expected_fingerprint`)."""

    profile: str
    """The selected DTLS-SRTP protection profile."""
    peer_fingerprint: str
    """The peer certificate's fingerprint, as `a=fingerprint` writes it."""
    at: float
    """The caller's clock when it happened."""


@dataclass(frozen=True)
class HandshakeFailed:
    """The handshake ended without keys."""

    reason: str
    """What went wrong, naming what was offered, signalled or received."""
    at: float
    timed_out: bool = False
    """The deadline passed first: the peer never finished the handshake, or the signalling never
    brought its fingerprint. A silent peer rather than a refusal (`PeerTimeout`, not
    `DtlsError`, in `confsec.media.dtls_leg`)."""


@dataclass(frozen=True)
class ConnectionClosed:
    """An established association ended (close_notify or an alert); its keys stay as they were."""

    reason: str
    at: float


DtlsEvent = HandshakeCompleted | HandshakeFailed | ConnectionClosed


_ILLEGAL_PARAMETER = 47
_HANDSHAKE_FAILURE = 40
_INSUFFICIENT_SECURITY = 71


def negotiation_problem(
    role: str,
    selected: str,
    offered: tuple[str, ...],
    peer_offered: tuple[str, ...] | None,
    *,
    allow_null: bool,
) -> tuple[str, int] | None:
    """Why a negotiated protection profile is unacceptable, and the alert to send; else None.

    `selected` is '' when the ServerHello carried no `use_srtp`; `peer_offered` is what the
    ClientHello offered (server side, None when it could not be read).
    """
    ours = ", ".join(offered)
    if not selected:
        if role == "server":
            said = ", ".join(peer_offered) if peer_offered else "no use_srtp extension"
            if peer_offered is None:
                said = "profiles we could not read"
            what = f"the peer offered {said}, we offer {ours}"
        else:
            what = f"the peer's ServerHello selected none of {ours}"
        return f"no SRTP protection profile in common: {what}", _HANDSHAKE_FAILURE
    if selected in NULL_PROFILES and not allow_null:
        return f"the peer selected {selected}, which does not encrypt", _INSUFFICIENT_SECURITY
    if selected not in offered:
        return f"the peer selected {selected}, which we did not offer ({ours})", _ILLEGAL_PARAMETER
    return None
