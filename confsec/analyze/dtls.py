"""DTLS-SRTP (RFC 5764) in a capture: who shook hands with whom, on what, and with which keys.

SDES puts SRTP keys in the SDP; DTLS-SRTP never sends them at all, so a capture alone can only
say what the handshake negotiated in the clear: the randoms, the SRTP protection profile (a NULL
profile breaks R3), the cipher suite, extended master secret, the certificates (which must match
the SDP `a=fingerprint` of their side, RFC 8122 §5, or anyone on the signalling path could sit in
the middle) and the alerts. With the NSS key log of one endpoint (`CLIENT_RANDOM` lines), the
RFC 5705 exporter gives the SRTP master keys of both directions, as `SrtpKey`s the existing SRTP
judging (`confsec.analyze.media`) takes unchanged.

The exporter and the key log live in `confsec.analyze.dtls_keys` (pure computation) and are
re-exported here. Addresses are (ip, port) pairs as `confsec.analyze.pcap.Packet` gives them.
Keys and master secrets never appear in a repr or a finding: only `key_fingerprint` names them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from confsec.analyze.dtls_keys import (
    CIPHER_SUITES,
    DerivedSrtpKeys,
    KeyLog,
    NoDtlsKeys,
    cipher_suite_name,
    derive_srtp_keys,
    parse_keylog,
    prf_hash,
    read_keylog,
    srtp_suite,
    tls_prf,
)
from confsec.analyze.findings import SrtpKey
from confsec.codec import dtls as wire
from confsec.media.ledger import key_fingerprint

__all__ = [
    "CIPHER_SUITES",
    "Address",
    "AssociationKeys",
    "CertificateFinding",
    "DerivedSrtpKeys",
    "DirectionKey",
    "DtlsAssociation",
    "DtlsAssociationTracker",
    "DtlsSide",
    "KeyLog",
    "NoDtlsKeys",
    "SeenAlert",
    "association_keys",
    "cipher_suite_name",
    "derive_srtp_keys",
    "judge_certificate",
    "parse_keylog",
    "prf_hash",
    "read_keylog",
    "srtp_suite",
    "tls_prf",
]

Address = tuple[str, int]
"""(ip, port) of one end of a UDP flow."""

_KEEP = 32
"""Alerts, message names and notes kept per association: enough to explain, bounded."""

# -- associations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenAlert:
    timestamp: float
    alert: wire.Alert


@dataclass
class DtlsSide:
    """What one end of an association sent."""

    address: Address
    certificates: tuple[bytes, ...] = field(default=(), repr=False)
    """DER, end-entity first, from its Certificate message (empty when none was seen)."""
    change_cipher_spec: bool = False
    encrypted_handshake: int = 0
    """Handshake records after its ChangeCipherSpec: its Finished (and retransmissions)."""
    application_data: int = 0
    encrypted_alerts: int = 0
    alerts: list[SeenAlert] = field(default_factory=list)
    """Alerts it sent in the clear (epoch 0): why a handshake failed."""
    messages: list[str] = field(default_factory=list)
    reassembler: wire.HandshakeReassembler = field(
        default_factory=wire.HandshakeReassembler, repr=False
    )


@dataclass
class DtlsAssociation:
    """One DTLS handshake between two UDP addresses, and what followed it."""

    endpoints: tuple[Address, Address]
    first_seen: float
    last_seen: float
    sides: dict[Address, DtlsSide] = field(repr=False)
    client: Address | None = None
    server: Address | None = None
    version: int | None = None
    client_random: bytes | None = None
    server_random: bytes | None = None
    offered_suites: tuple[int, ...] = ()
    offered_profiles: tuple[int, ...] = ()
    cipher_suite: int | None = None
    selected_profile: int | None = None
    client_ems: bool = False
    server_ems: bool = False
    hello_verify_requests: int = 0
    completed_at: float | None = None
    malformed: int = 0
    """Records or messages that did not parse (the notes say which)."""
    notes: list[str] = field(default_factory=list)
    """Protocol defects seen, in words (the first `_KEEP`)."""

    @property
    def completed(self) -> bool:
        """Both sides sent ChangeCipherSpec. Finished is encrypted; without the keys this is as
        close as a capture gets to "the handshake succeeded"."""
        return all(s.change_cipher_spec for s in self.sides.values()) and len(self.sides) == 2

    @property
    def extended_master_secret(self) -> bool:
        return self.client_ems and self.server_ems

    @property
    def null_cipher(self) -> bool:
        return self.selected_profile is not None and wire.is_null_profile(self.selected_profile)

    def side(self, address: Address) -> DtlsSide:
        if address not in self.sides:
            self.sides[address] = DtlsSide(address)
        return self.sides[address]

    def role(self, address: Address) -> str:
        return {self.client: "client", self.server: "server"}.get(address, "endpoint")

    def other(self, address: Address) -> Address:
        a, b = self.endpoints
        return b if address == a else a

    def name(self) -> str:
        c, s = (self.client, self.server) if self.client else self.endpoints
        return f"DTLS {_addr(c)} -> {_addr(s)}"

    def note(self, text: str) -> None:
        if len(self.notes) < _KEEP:
            self.notes.append(text)


def _addr(a: Address | None) -> str:
    return "?" if a is None else f"{a[0]}:{a[1]}"


class DtlsAssociationTracker:
    """Follows every DTLS association in a capture: `feed()` each UDP datagram whose first byte
    is 20-63 (others are counted and ignored), then read `associations`, in the order they
    started. A new ClientHello (another random) on a flow whose handshake got past ServerHello
    starts a new association on that flow; retransmissions do not."""

    def __init__(self, max_associations: int = 1024):
        self.max_associations = max_associations
        self.associations: list[DtlsAssociation] = []
        self._current: dict[tuple[Address, Address], DtlsAssociation] = {}
        self.not_dtls = 0
        self.dropped = 0
        """DTLS datagrams ignored because `max_associations` was reached."""
        self.malformed = 0
        """Datagrams with a record-layer defect (also counted on their association, if any)."""

    def association(self, a: Address, b: Address) -> DtlsAssociation | None:
        """The latest association between two addresses, either way round."""
        return self._current.get((a, b) if a <= b else (b, a))

    def feed(
        self, timestamp: float, src: Address, dst: Address, datagram: bytes
    ) -> DtlsAssociation | None:
        """One UDP datagram of the capture; returns the association it belongs to (None when it
        is not DTLS or the association limit was reached). A bad record ends the datagram (its
        framing is lost); a bad message inside a good record costs that record only."""
        if not wire.is_dtls(datagram):
            self.not_dtls += 1
            return None
        flow = (src, dst) if src <= dst else (dst, src)
        assoc = self._current.get(flow)
        try:
            for rec in wire.iter_records(datagram):
                frags: list[wire.HandshakeMessage] = []
                bad: wire.DtlsParseError | None = None
                if rec.content_type == wire.HANDSHAKE and rec.epoch == 0:
                    try:
                        frags = wire.parse_handshake(rec.fragment)
                    except wire.DtlsParseError as exc:
                        bad = exc
                if assoc is None or _restarts(assoc, frags):
                    assoc = self._open(flow, timestamp)
                    if assoc is None:
                        return None
                assoc.last_seen = timestamp
                if bad is not None:
                    _defect(assoc, src, rec, bad)
                    continue
                try:
                    self._record(assoc, timestamp, assoc.side(src), rec, frags)
                except wire.DtlsParseError as exc:
                    _defect(assoc, src, rec, exc)
        except wire.DtlsParseError as exc:
            self.malformed += 1
            if assoc is not None:
                assoc.malformed += 1
                assoc.note(f"{_addr(src)}: bad DTLS record: {exc}")
        return assoc

    def _open(self, flow: tuple[Address, Address], ts: float) -> DtlsAssociation | None:
        if len(self.associations) >= self.max_associations:
            self.dropped += 1
            return None
        assoc = DtlsAssociation(flow, ts, ts, {})
        self.associations.append(assoc)
        self._current[flow] = assoc
        return assoc

    def _record(
        self,
        assoc: DtlsAssociation,
        ts: float,
        side: DtlsSide,
        rec: wire.DtlsRecord,
        frags: list[wire.HandshakeMessage],
    ) -> None:
        if rec.content_type == wire.CHANGE_CIPHER_SPEC:
            if rec.fragment != b"\x01":
                assoc.note(f"{_addr(side.address)}: ChangeCipherSpec is not the byte 1")
            side.change_cipher_spec = True
            if assoc.completed and assoc.completed_at is None:
                assoc.completed_at = ts
        elif rec.content_type == wire.ALERT and rec.epoch == 0:
            for alert in wire.parse_alerts(rec.fragment):
                if len(side.alerts) < _KEEP:
                    side.alerts.append(SeenAlert(ts, alert))
        elif rec.content_type == wire.ALERT:
            side.encrypted_alerts += 1
        elif rec.content_type == wire.HANDSHAKE and rec.epoch == 0:
            for frag in frags:
                msg = side.reassembler.add(frag)
                if msg is not None:
                    _message(assoc, side, msg)
        elif rec.content_type == wire.HANDSHAKE:
            side.encrypted_handshake += 1
        elif rec.content_type == wire.APPLICATION_DATA:
            side.application_data += 1
            if rec.epoch == 0:
                assoc.note(f"{_addr(side.address)}: application data in epoch 0 (unencrypted)")


def _restarts(assoc: DtlsAssociation, frags: list[wire.HandshakeMessage]) -> bool:
    """A ClientHello with another random, once the old handshake got a ServerHello: the peer
    began again (RFC 6347 §4.2.1 keeps the random across the HelloVerifyRequest exchange)."""
    if assoc.server_random is None or assoc.client_random is None:
        return False
    return any(
        f.msg_type == wire.CLIENT_HELLO
        and f.fragment_offset == 0
        and len(f.body) >= 34
        and f.body[2:34] != assoc.client_random
        for f in frags
    )


def _defect(
    assoc: DtlsAssociation, src: Address, rec: wire.DtlsRecord, exc: wire.DtlsParseError
) -> None:
    assoc.malformed += 1
    assoc.note(f"{_addr(src)}: content type {rec.content_type}, epoch {rec.epoch}: {exc}")


def _message(assoc: DtlsAssociation, side: DtlsSide, msg: wire.HandshakeMessage) -> None:
    """One complete plaintext handshake message from `side`."""
    if len(side.messages) < _KEEP:
        side.messages.append(msg.name)
    here, there = side.address, assoc.other(side.address)
    if msg.msg_type == wire.CLIENT_HELLO:
        ch = wire.parse_client_hello(msg.body)
        if assoc.server == here:
            assoc.note(f"{_addr(here)}: ClientHello from the server's address")
            return
        srtp = ch.use_srtp
        assoc.client, assoc.server = here, there
        assoc.version, assoc.client_random = ch.version, ch.random
        assoc.offered_suites = ch.cipher_suites
        assoc.offered_profiles = srtp.profiles if srtp else ()
        assoc.client_ems = ch.extended_master_secret
    elif msg.msg_type == wire.HELLO_VERIFY_REQUEST:
        assoc.hello_verify_requests += 1
        assoc.server, assoc.client = here, there
    elif msg.msg_type == wire.SERVER_HELLO:
        sh = wire.parse_server_hello(msg.body)
        srtp = sh.use_srtp
        assoc.server, assoc.client = here, there
        assoc.version, assoc.server_random = sh.version, sh.random
        assoc.cipher_suite, assoc.server_ems = sh.cipher_suite, sh.extended_master_secret
        if srtp is not None:
            assoc.selected_profile = srtp.profiles[0]
            if len(srtp.profiles) != 1:  # RFC 5764 §4.1.1: exactly one
                assoc.note(f"{_addr(here)}: ServerHello use_srtp lists {len(srtp.profiles)}")
            if assoc.offered_profiles and srtp.profiles[0] not in assoc.offered_profiles:
                name = wire.profile_name(srtp.profiles[0])
                assoc.note(f"{_addr(here)}: ServerHello chose {name}, which was not offered")
    elif msg.msg_type == wire.CERTIFICATE:
        chain = tuple(wire.parse_certificate(msg.body))
        if side.certificates and side.certificates != chain:
            assoc.note(f"{_addr(here)}: a second, different Certificate")
        elif not side.certificates:
            side.certificates = chain


# -- keys per direction -----------------------------------------------------------------------


@dataclass(frozen=True)
class DirectionKey:
    """The SRTP master key that protects what `sender` sends (RFC 5764 §4.2: the client write
    key for the DTLS client's media)."""

    role: str
    sender: Address
    suite: str
    """As `a=crypto` names it (RFC 4568 / RFC 7714), what `confsec.media.srtp` runs."""
    key: bytes = field(repr=False)
    salt: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.key, self.salt)

    def as_srtp_key(self) -> SrtpKey:
        origin = f"DTLS-SRTP {self.role} {_addr(self.sender)} (key log)"
        return SrtpKey(self.suite, self.key, self.salt, origin)

    def __repr__(self) -> str:
        return f"DirectionKey({self.role} {_addr(self.sender)}, {self.suite}, {self.fingerprint})"


@dataclass(frozen=True)
class AssociationKeys:
    profile_id: int
    suite: str
    prf_hash: str
    client: DirectionKey
    server: DirectionKey

    @property
    def null_cipher(self) -> bool:
        return wire.is_null_profile(self.profile_id)

    def for_sender(self, address: Address) -> DirectionKey | None:
        return next((k for k in (self.client, self.server) if k.sender == address), None)


def association_keys(assoc: DtlsAssociation, keylog: KeyLog) -> AssociationKeys:
    """Both directions' SRTP keys; `NoDtlsKeys` says why not when they cannot be had."""
    cr, sr, profile = assoc.client_random, assoc.server_random, assoc.selected_profile
    if cr is None or assoc.client is None:
        raise NoDtlsKeys(f"{assoc.name()}: no ClientHello in the capture")
    if sr is None or assoc.server is None or assoc.cipher_suite is None:
        raise NoDtlsKeys(f"{assoc.name()}: no ServerHello in the capture")
    if profile is None:
        raise NoDtlsKeys(f"{assoc.name()}: no SRTP profile negotiated (no use_srtp)")
    prf = prf_hash(assoc.version or 0, assoc.cipher_suite)
    if prf is None:
        suite = cipher_suite_name(assoc.cipher_suite)
        raise NoDtlsKeys(f"{assoc.name()}: {suite}: PRF hash not known")
    master = keylog.master_secret(cr)
    if master is None:
        raise NoDtlsKeys(f"{assoc.name()}: the key log has no CLIENT_RANDOM {cr.hex()[:16]}...")
    name = srtp_suite(profile)[0]
    ck, cs, sk, ss = derive_srtp_keys(master, cr, sr, profile, prf)
    client = DirectionKey("client", assoc.client, name, ck, cs)
    server = DirectionKey("server", assoc.server, name, sk, ss)
    return AssociationKeys(profile, name, prf, client, server)


# -- certificates against a=fingerprint -------------------------------------------------------


@dataclass(frozen=True)
class CertificateFinding:
    """One side's certificate held against the fingerprints signalled for its address."""

    role: str
    address: Address
    outcome: str
    """"matched", "mismatch", "not-visible" (no Certificate in the capture) or "not-signalled"
    (no usable fingerprint for that address)."""
    sentence: str
    hash_name: str | None = None
    signalled: str | None = None
    """As SDP writes it: upper-case hex pairs joined by colons."""
    observed: str | None = None


def _colons(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


_HASHES = frozenset({"md5", "sha1", "sha224", "sha256", "sha384", "sha512"})
"""RFC 8122 §5's hash functions that hashlib has (md2 it has not)."""


def _hash(name: str) -> str | None:
    """The hashlib name of an RFC 8122 hash function name ("sha-256" -> "sha256")."""
    norm = name.lower().replace("-", "")
    return norm if norm in _HASHES else None


def judge_certificate(
    assoc: DtlsAssociation, signalled: dict[Address, list[tuple[str, bytes]]]
) -> list[CertificateFinding]:
    """RFC 8122 §5: the end-entity certificate each side sent must match a fingerprint its SDP
    signalled. One finding per side, client first."""
    out = []
    order = [a for a in (assoc.client, assoc.server) if a is not None] or list(assoc.endpoints)
    for addr in order:
        role, side = assoc.role(addr), assoc.sides.get(addr)
        who = f"the {role} {_addr(addr)} of {assoc.name()}"
        usable = [(h, _hash(h), fp) for h, fp in signalled.get(addr, ()) if _hash(h)]
        if not usable:
            what = "no fingerprint" if addr not in signalled else "no fingerprint of a known hash"
            sentence = f"{who}: {what} signalled for this address; its certificate is not judged"
            out.append(CertificateFinding(role, addr, "not-signalled", sentence))
            continue
        if side is None or not side.certificates:
            sentence = f"{who}: no Certificate from this side in the capture; not judged"
            out.append(CertificateFinding(role, addr, "not-visible", sentence))
            continue
        leaf = side.certificates[0]
        seen = [(h, _colons(fp), _colons(hashlib.new(n, leaf).digest())) for h, n, fp in usable]
        hit = next((s for s in seen if s[1] == s[2]), None)
        if hit is not None:
            sentence = f"{who}: certificate matches the signalled {hit[0]} fingerprint"
            out.append(CertificateFinding(role, addr, "matched", sentence, *hit))
        else:
            h, want, got = seen[0]
            sentence = (
                f"{who}: certificate {h} fingerprint {got} differs from the signalled {want}: "
                "the DTLS peer is not the one the signalling named (RFC 8122 §5)"
            )
            out.append(CertificateFinding(role, addr, "mismatch", sentence, h, want, got))
    return out
