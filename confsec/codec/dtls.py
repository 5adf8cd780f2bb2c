"""DTLS 1.2 records and plaintext handshake messages, sans-IO (RFC 6347, RFC 5246, RFC 5764).

`confsec analyze` judges DTLS-SRTP from a capture without taking part in the handshake: it needs
the randoms (to find the master secret in a key log and derive the SRTP keys), the negotiated
SRTP protection profile (a NULL profile breaks R3), the cipher suite (its PRF hash) and the
certificates (to hold them against the SDP fingerprints). All of that travels in epoch 0, in the
clear. This module reads exactly that much: the record layer, handshake message headers with
fragment reassembly, ClientHello, ServerHello, Certificate and alerts. Nothing here decrypts.

Captures come from systems under test, so every length is checked against what is left and
against the limits below before anything is allocated; every defect is a `DtlsParseError`
(a `RemoteProtocolError`, carrying the byte offset), never an IndexError or struct.error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from confsec.errors import RemoteProtocolError

__all__ = [
    "SRTP_PROFILES",
    "Alert",
    "ClientHello",
    "DtlsParseError",
    "DtlsRecord",
    "Extension",
    "HandshakeMessage",
    "HandshakeReassembler",
    "ServerHello",
    "UseSrtp",
    "is_dtls",
    "is_null_profile",
    "iter_records",
    "parse_alerts",
    "parse_certificate",
    "parse_client_hello",
    "parse_handshake",
    "parse_records",
    "parse_server_hello",
    "parse_use_srtp",
    "profile_name",
]

# -- wire constants -------------------------------------------------------------------------

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
_CONTENT_TYPES = frozenset({CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, 24})
"""Record types with the plain DTLS 1.2 header (24 is heartbeat). Type 25 (RFC 9146 connection
ID) has a header whose CID length only the handshake knows, and 32-63 is the DTLS 1.3 unified
header: both are refused rather than misread."""

CLIENT_HELLO = 1
SERVER_HELLO = 2
HELLO_VERIFY_REQUEST = 3
CERTIFICATE = 11
HANDSHAKE_NAMES = {
    0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 3: "HelloVerifyRequest",
    4: "NewSessionTicket", 11: "Certificate", 12: "ServerKeyExchange",
    13: "CertificateRequest", 14: "ServerHelloDone", 15: "CertificateVerify",
    16: "ClientKeyExchange", 20: "Finished",
}  # fmt: skip

EXT_USE_SRTP = 14  # RFC 5764 §4.1.1
EXT_EXTENDED_MASTER_SECRET = 23  # RFC 7627

RECORD_HEADER_LEN = 13
HANDSHAKE_HEADER_LEN = 12
MAX_RECORD_LEN = 2**14 + 2048
"""Largest record fragment TLS 1.2 allows at all (TLSCiphertext, RFC 5246 §6.2.3)."""
MAX_HANDSHAKE_LEN = 2**16
"""Largest handshake message confsec reassembles. The wire allows 2^24; a DTLS-SRTP handshake
(one self-signed certificate per side) needs a few KiB, and a capture must not make us allocate
16 MiB per message."""
MAX_CERTIFICATES = 16

SRTP_PROFILES: dict[int, str] = {
    0x0001: "SRTP_AES128_CM_HMAC_SHA1_80",
    0x0002: "SRTP_AES128_CM_HMAC_SHA1_32",
    0x0005: "SRTP_NULL_HMAC_SHA1_80",
    0x0006: "SRTP_NULL_HMAC_SHA1_32",
    0x0007: "SRTP_AEAD_AES_128_GCM",
    0x0008: "SRTP_AEAD_AES_256_GCM",
}
"""DTLS-SRTP protection profiles (RFC 5764 §4.1.2, RFC 7714 §14.2)."""
_NULL_PROFILES = frozenset({0x0005, 0x0006})

ALERT_NAMES = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
    100: "no_renegotiation", 110: "unsupported_extension",
}  # fmt: skip


def profile_name(profile_id: int) -> str:
    """The RFC name of an SRTP protection profile, or its number when unknown."""
    return SRTP_PROFILES.get(profile_id, f"SRTP profile 0x{profile_id:04x}")


def is_null_profile(profile_id: int) -> bool:
    """True for the profiles that authenticate but do not encrypt (a secure conference refuses
    them)."""
    return profile_id in _NULL_PROFILES


def is_dtls(datagram: bytes) -> bool:
    """RFC 7983 demultiplexing: a first byte of 20-63 is DTLS (STUN, ZRTP, RTP are elsewhere)."""
    return bool(datagram) and 20 <= datagram[0] <= 63


class DtlsParseError(RemoteProtocolError):
    """The bytes are not well-formed DTLS: the peer (or the capture) is at fault."""


class _Reader:
    """A cursor that turns every overrun into a `DtlsParseError` naming the field."""

    __slots__ = ("base", "data", "pos")

    def __init__(self, data: bytes, base: int = 0):
        self.data = data
        self.pos = 0
        self.base = base

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise DtlsParseError(f"{what}: needs {n} bytes, {self.left} left", offset=self.at)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "big")

    def vector(self, len_bytes: int, what: str, low: int = 0, high: int | None = None) -> bytes:
        n = self.uint(len_bytes, f"{what} length")
        if n < low or (high is not None and n > high):
            bounds = f"{low}..{high}" if high is not None else f"at least {low}"
            raise DtlsParseError(f"{what}: length {n}, must be {bounds}", offset=self.at)
        return self.take(n, what)

    def end(self, what: str) -> None:
        if self.left:
            raise DtlsParseError(f"{what}: {self.left} trailing bytes", offset=self.at)

    @property
    def at(self) -> int:
        return self.base + self.pos


# -- record layer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DtlsRecord:
    """One DTLS 1.2 record (RFC 6347 §4.1), its fragment as sent (ciphertext after epoch 0)."""

    content_type: int
    version: int
    """0xfeff DTLS 1.0, 0xfefd DTLS 1.2."""
    epoch: int
    sequence_number: int
    """48 bits; together with the epoch, what replay detection keys on."""
    fragment: bytes = field(repr=False)
    offset: int = 0
    """Where the record header starts in its datagram."""


def iter_records(datagram: bytes) -> Iterator[DtlsRecord]:
    """Yield the records of a datagram in order, raising `DtlsParseError` at the first defect
    (after yielding the good ones before it, which a capture reader may still want)."""
    r = _Reader(datagram)
    while r.left:
        start = r.pos
        if r.left < RECORD_HEADER_LEN:
            raise DtlsParseError(f"record header: {r.left} of 13 bytes", offset=start)
        ctype = r.uint(1, "content type")
        if ctype not in _CONTENT_TYPES:
            raise DtlsParseError(f"content type {ctype} has no DTLS 1.2 header", offset=start)
        version = r.uint(2, "version")
        if version >> 8 != 0xFE:
            raise DtlsParseError(f"version 0x{version:04x} is not DTLS", offset=start + 1)
        epoch = r.uint(2, "epoch")
        seq = r.uint(6, "sequence number")
        length = r.uint(2, "length")
        if length > MAX_RECORD_LEN:
            raise DtlsParseError(f"record length {length} > {MAX_RECORD_LEN}", offset=start + 11)
        fragment = r.take(length, "record fragment")
        yield DtlsRecord(ctype, version, epoch, seq, fragment, start)


def parse_records(datagram: bytes) -> list[DtlsRecord]:
    """All records of one UDP datagram (several may share it, RFC 6347 §4.1.1)."""
    if not datagram:
        raise DtlsParseError("empty datagram", offset=0)
    return list(iter_records(datagram))


# -- handshake layer --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """A handshake message or a fragment of one (RFC 6347 §4.2.2). Complete when the fragment
    covers the whole message."""

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment_length: int
    body: bytes = field(repr=False)

    @property
    def complete(self) -> bool:
        return self.fragment_offset == 0 and self.fragment_length == self.length

    @property
    def name(self) -> str:
        return HANDSHAKE_NAMES.get(self.msg_type, f"handshake type {self.msg_type}")


def parse_handshake(fragment: bytes) -> list[HandshakeMessage]:
    """The handshake fragments carried by one plaintext handshake record."""
    r = _Reader(fragment)
    out = []
    while r.left:
        start = r.pos
        if r.left < HANDSHAKE_HEADER_LEN:
            raise DtlsParseError(f"handshake header: {r.left} of 12 bytes", offset=start)
        msg_type = r.uint(1, "msg_type")
        length = r.uint(3, "handshake length")
        seq = r.uint(2, "message_seq")
        off = r.uint(3, "fragment_offset")
        flen = r.uint(3, "fragment_length")
        if length > MAX_HANDSHAKE_LEN:
            raise DtlsParseError(f"handshake length {length} > {MAX_HANDSHAKE_LEN}", offset=start)
        if off + flen > length:
            raise DtlsParseError(
                f"fragment {off}+{flen} runs past message length {length}", offset=start + 6
            )
        body = r.take(flen, "handshake fragment")
        out.append(HandshakeMessage(msg_type, length, seq, off, flen, body))
    return out


MAX_PIECES = 256
"""Separate pieces one message may be held in while incomplete: bounds the work per fragment."""


@dataclass(slots=True)
class _Pending:
    msg_type: int
    length: int
    pieces: dict[int, bytes] = field(default_factory=dict)
    """offset -> bytes, never overlapping: memory is what arrived, not what a header claims."""
    have: int = 0


class HandshakeReassembler:
    """Puts fragmented handshake messages of one direction back together, keyed by message_seq.

    Fragments may come in any order, overlap, or repeat (retransmission). Overlapping bytes
    that disagree, or a message_seq reused with another type or length, raise `DtlsParseError`.
    At most `max_pending` messages are held at once (more are dropped and counted), each in at
    most `MAX_PIECES` pieces, and only the bytes that arrived are stored, so a hostile capture
    cannot make a claimed length cost memory.
    """

    def __init__(self, max_pending: int = 8):
        self.max_pending = max_pending
        self._pending: dict[int, _Pending] = {}
        self._done: dict[int, tuple[int, int]] = {}
        """message_seq -> (msg_type, length) of messages already delivered."""
        self.dropped = 0
        """Fragments refused: too many messages pending at once."""
        self.repeated = 0
        """Fragments of messages already delivered (retransmissions)."""

    def add(self, frag: HandshakeMessage) -> HandshakeMessage | None:
        """Take one fragment; return the message once all its bytes have arrived."""
        seq, start = frag.message_seq, frag.fragment_offset
        end = start + len(frag.body)
        if frag.length > MAX_HANDSHAKE_LEN or end > frag.length:
            raise DtlsParseError(
                f"message_seq {seq}: fragment outside a message of at most "
                f"{MAX_HANDSHAKE_LEN} bytes"
            )
        if seq in self._done:
            if self._done[seq] != (frag.msg_type, frag.length):
                raise DtlsParseError(f"message_seq {seq} reused for another message")
            self.repeated += 1
            return None
        p = self._pending.get(seq)
        if p is None and start == 0 and end == frag.length:
            self._done[seq] = (frag.msg_type, frag.length)
            return frag
        if p is None:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                return None
            p = self._pending[seq] = _Pending(frag.msg_type, frag.length)
        elif (p.msg_type, p.length) != (frag.msg_type, frag.length):
            raise DtlsParseError(f"message_seq {seq}: fragments disagree on type or length")
        for a, data in p.pieces.items():
            lo, hi = max(a, start), min(a + len(data), end)
            if lo < hi and data[lo - a : hi - a] != frag.body[lo - start : hi - start]:
                raise DtlsParseError(f"message_seq {seq}: overlapping fragments differ")
        for lo, hi in _gaps(start, end, p.pieces):
            p.pieces[lo] = frag.body[lo - start : hi - start]
            p.have += hi - lo
        if len(p.pieces) > MAX_PIECES:
            raise DtlsParseError(f"message_seq {seq}: more than {MAX_PIECES} pieces")
        if p.have < p.length:
            return None
        del self._pending[seq]
        self._done[seq] = (p.msg_type, p.length)
        body = b"".join(p.pieces[k] for k in sorted(p.pieces))
        return HandshakeMessage(p.msg_type, p.length, seq, 0, p.length, body)

    @property
    def pending(self) -> int:
        """Messages with some but not all of their bytes."""
        return len(self._pending)


def _gaps(start: int, end: int, pieces: dict[int, bytes]) -> list[tuple[int, int]]:
    """The parts of [start, end) no piece covers yet."""
    out, cur = [], start
    for a in sorted(pieces):
        b = a + len(pieces[a])
        if a >= end:
            break
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
    if cur < end:
        out.append((cur, end))
    return out


# -- hello messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extension:
    ext_type: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class UseSrtp:
    """The use_srtp extension (RFC 5764 §4.1.1): offered (client) or chosen (server) profiles."""

    profiles: tuple[int, ...]
    mki: bytes = b""


def parse_use_srtp(data: bytes) -> UseSrtp:
    r = _Reader(data)
    raw = r.vector(2, "SRTPProtectionProfiles", low=2, high=2**16 - 2)
    if len(raw) % 2:
        raise DtlsParseError("SRTPProtectionProfiles: odd length", offset=2)
    mki = r.vector(1, "srtp_mki")
    r.end("use_srtp")
    ids = tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
    return UseSrtp(ids, mki)


class _Hello:
    """What ClientHello and ServerHello share: the extensions and their readings."""

    extensions: tuple[Extension, ...]

    def extension(self, ext_type: int) -> Extension | None:
        return next((e for e in self.extensions if e.ext_type == ext_type), None)

    @property
    def use_srtp(self) -> UseSrtp | None:
        e = self.extension(EXT_USE_SRTP)
        return None if e is None else parse_use_srtp(e.data)

    @property
    def extended_master_secret(self) -> bool:
        return self.extension(EXT_EXTENDED_MASTER_SECRET) is not None


@dataclass(frozen=True)
class ClientHello(_Hello):
    version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extensions: tuple[Extension, ...]


@dataclass(frozen=True)
class ServerHello(_Hello):
    version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...]


def _extensions(r: _Reader) -> tuple[Extension, ...]:
    if not r.left:  # extensions are optional at the end of a hello (RFC 5246 §7.4.1.2)
        return ()
    block = _Reader(r.vector(2, "extensions"), r.at)
    r.end("hello")
    out: list[Extension] = []
    seen: set[int] = set()
    while block.left:
        at = block.at
        ext_type = block.uint(2, "extension type")
        data = block.vector(2, f"extension {ext_type}")
        if ext_type in seen:  # RFC 5246 §7.4.1.4: at most one of each type
            raise DtlsParseError(f"extension {ext_type} appears twice", offset=at)
        seen.add(ext_type)
        out.append(Extension(ext_type, data))
    return tuple(out)


def parse_client_hello(body: bytes) -> ClientHello:
    """A complete ClientHello body (RFC 6347 §4.2.1: TLS 1.2's plus the cookie)."""
    r = _Reader(body)
    version = r.uint(2, "client_version")
    random = r.take(32, "random")
    session_id = r.vector(1, "session_id", high=32)
    cookie = r.vector(1, "cookie", high=255)
    raw = r.vector(2, "cipher_suites", low=2, high=2**16 - 2)
    if len(raw) % 2:
        raise DtlsParseError("cipher_suites: odd length", offset=r.at)
    suites = tuple(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
    compression = r.vector(1, "compression_methods", low=1)
    return ClientHello(version, random, session_id, cookie, suites, compression, _extensions(r))


def parse_server_hello(body: bytes) -> ServerHello:
    r = _Reader(body)
    version = r.uint(2, "server_version")
    random = r.take(32, "random")
    session_id = r.vector(1, "session_id", high=32)
    suite = r.uint(2, "cipher_suite")
    compression = r.uint(1, "compression_method")
    return ServerHello(version, random, session_id, suite, compression, _extensions(r))


def parse_certificate(body: bytes) -> list[bytes]:
    """The DER certificates of a TLS 1.2 Certificate message, end-entity first."""
    r = _Reader(body)
    chain = _Reader(r.vector(3, "certificate_list"), 3)
    r.end("Certificate")
    out = []
    while chain.left:
        if len(out) == MAX_CERTIFICATES:
            raise DtlsParseError(f"more than {MAX_CERTIFICATES} certificates", offset=chain.at)
        out.append(chain.vector(3, "certificate", low=1))
    return out


@dataclass(frozen=True, slots=True)
class Alert:
    level: int
    """1 warning, 2 fatal."""
    description: int

    @property
    def name(self) -> str:
        return ALERT_NAMES.get(self.description, f"alert {self.description}")


def parse_alerts(fragment: bytes) -> list[Alert]:
    """The alerts of a plaintext alert record (two bytes each)."""
    if not fragment or len(fragment) % 2:
        raise DtlsParseError(f"alert record of {len(fragment)} bytes", offset=0)
    return [Alert(fragment[i], fragment[i + 1]) for i in range(0, len(fragment), 2)]
