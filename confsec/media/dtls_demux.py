"""Which of a media leg's DTLS associations a datagram belongs to, once a rekey put a new one
beside the old (RFC 8842 section 5: a new `a=tls-id`, a new association on the same 5-tuple).

The peer's side of a superseded association may still be talking: a flight that answered the
old ClientHello late, or its retransmissions. Given to the new handshake, OpenSSL takes such a
message for its own whenever its sequence number is the one it expects, and fails: a
certificate of another fingerprint, a ServerKeyExchange signed for another ClientHello ("bad
signature"), a NewSessionTicket of another session ("digest check failed"). A peer that resends
a superseded flight is conformant; the suite must not be confused by it.

- `peek_flight()` reads what the plaintext (epoch 0) records of a datagram tell about its flight:
  a ServerHello's random, the certificate, a ServerKeyExchange, a last flight. Pure.
- `signed_for()` tells whether a ServerKeyExchange answers a given ClientHello (its signature
  covers the client random): what separates two associations of a peer that uses one
  certificate for both. Pure.
- `client_hello_random()`: which client a ClientHello comes from (the reference's mixer keeps
  a newer association's ClientHello for it, `confsec.reference.mixer_leg`).
- `AssociationRouter` gives each DTLS datagram of a leg to its association's driver
  (`MediaLeg.attach_dtls`); SRTP never comes here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from confsec.codec import dtls as wire
from confsec.media.dtls_records import frame_records

if TYPE_CHECKING:
    from confsec.media.dtls_leg import DtlsDriver

__all__ = [
    "AssociationRouter",
    "FlightPeek",
    "certificate_leaf",
    "client_hello_random",
    "peek_flight",
    "signed_for",
]


SERVER_FIRST_FLIGHT = frozenset({2, 11, 12, 13, 14})
"""ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone."""
_NEW_SESSION_TICKET = 4
_SERVER_KEY_EXCHANGE = 12


@dataclass(frozen=True, slots=True)
class FlightPeek:
    """What the plaintext (epoch 0) records of one datagram tell about the association that sent
    it (`peek_flight`). Nothing after the ChangeCipherSpec can be read, nor needs to be."""

    server_random: bytes | None = None
    """The random of a whole ServerHello: a server's first flight starts in this datagram."""
    certificate: bytes | None = None
    """The end-entity certificate (DER) of a whole Certificate message: whose flight this is
    (b"" when the message holds none that can be read)."""
    certificate_fragments: tuple[wire.HandshakeMessage, ...] = ()
    """Pieces of a Certificate message cut across records (`wire.HandshakeReassembler`)."""
    server_key_exchange: bytes | None = None
    """The body of a whole ServerKeyExchange: its signature binds the flight to one ClientHello
    (`signed_for`), where a certificate used for several associations cannot."""
    first_flight: bool = False
    """It carries messages of a server's first flight (`SERVER_FIRST_FLIGHT`)."""
    final_flight: bool = False
    """It carries a NewSessionTicket or a plaintext ChangeCipherSpec: a server's last flight,
    the answer to a client's Finished (or a client's own second flight)."""


def peek_flight(datagram: bytes) -> FlightPeek | None:
    """Read the epoch-0 handshake and ChangeCipherSpec records of a DTLS datagram; None when
    they say nothing about a first or final flight (a ClientHello, alerts, epoch 1 and later).

    Records that do not parse are skipped: the endpoint that gets the datagram judges them."""
    records, _ = frame_records(datagram)
    server_random = certificate = key_exchange = None
    fragments: list[wire.HandshakeMessage] = []
    first = final = False
    for rec, _raw in records:
        if rec.epoch != 0:
            continue
        if rec.content_type == wire.CHANGE_CIPHER_SPEC:
            final = True
            continue
        if rec.content_type != wire.HANDSHAKE:
            continue
        try:
            messages = wire.parse_handshake(rec.fragment)
        except wire.DtlsParseError:
            continue
        for msg in messages:
            if msg.msg_type == _NEW_SESSION_TICKET:
                final = True
            if msg.msg_type not in SERVER_FIRST_FLIGHT:
                continue
            first = True
            if msg.msg_type == wire.SERVER_HELLO and msg.complete and len(msg.body) >= 34:
                server_random = msg.body[2:34]  # after server_version (RFC 5246 7.4.1.3)
            elif msg.msg_type == wire.CERTIFICATE and not msg.complete:
                fragments.append(msg)
            elif msg.msg_type == wire.CERTIFICATE and certificate is None:
                certificate = certificate_leaf(msg.body) or b""
            elif msg.msg_type == _SERVER_KEY_EXCHANGE and msg.complete:
                key_exchange = msg.body
    if not (first or final):
        return None
    return FlightPeek(server_random, certificate, tuple(fragments), key_exchange, first, final)


_HASHES = {2: hashes.SHA1, 4: hashes.SHA256, 5: hashes.SHA384, 6: hashes.SHA512}
_PSS = {0x0804: hashes.SHA256, 0x0805: hashes.SHA384, 0x0806: hashes.SHA512}
_PSS |= {0x0809: hashes.SHA256, 0x080A: hashes.SHA384, 0x080B: hashes.SHA512}


def signed_for(
    server_key_exchange: bytes, client_random: bytes, server_random: bytes, certificate: bytes
) -> bool | None:
    """Whether an ECDHE ServerKeyExchange was signed, with `certificate`'s key, for the
    ClientHello of `client_random` and the ServerHello of `server_random` (RFC 8422 section
    5.4, RFC 5246 section 7.4.3); None when that cannot be read (another key exchange, an
    unknown signature algorithm, a certificate or key the library does not take)."""
    body = server_key_exchange
    if len(body) < 4 or body[0] != 3:  # named_curve ECParameters, then the point
        return None
    end = 4 + body[3]
    if len(body) < end + 4:
        return None
    params, scheme = body[:end], int.from_bytes(body[end : end + 2])
    signature = body[end + 4 : end + 4 + int.from_bytes(body[end + 2 : end + 4])]
    data = client_random + server_random + params
    try:
        key = x509.load_der_x509_certificate(certificate).public_key()
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            if scheme not in (0x0807, 0x0808):
                return None
            key.verify(signature, data)
        elif isinstance(key, rsa.RSAPublicKey) and scheme in _PSS:
            algorithm = _PSS[scheme]()
            pss = padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
            key.verify(signature, data, pss, algorithm)
        elif scheme >> 8 not in _HASHES:
            return None
        elif isinstance(key, rsa.RSAPublicKey) and scheme & 0xFF == 1:
            key.verify(signature, data, padding.PKCS1v15(), _HASHES[scheme >> 8]())
        elif isinstance(key, ec.EllipticCurvePublicKey) and scheme & 0xFF == 3:
            key.verify(signature, data, ec.ECDSA(_HASHES[scheme >> 8]()))
        else:
            return None
    except InvalidSignature:
        return False
    except (ValueError, TypeError):
        return None
    return True


def client_hello_random(datagram: bytes) -> bytes | None:
    """The random of the first whole ClientHello in a DTLS datagram, else None. A client keeps
    it when it resends the ClientHello (RFC 6347 section 4.2.1, a cookie or a timeout): another
    random is another client, a new association."""
    if not datagram or datagram[0] != wire.HANDSHAKE or datagram[3:5] != b"\x00\x00":
        return None  # cheap: only an epoch-0 handshake record first can hold a ClientHello
    for rec, _raw in frame_records(datagram)[0]:
        if rec.content_type != wire.HANDSHAKE or rec.epoch != 0:
            continue
        try:
            messages = wire.parse_handshake(rec.fragment)
        except wire.DtlsParseError:
            continue
        for msg in messages:
            if msg.msg_type == wire.CLIENT_HELLO and msg.complete and len(msg.body) >= 34:
                return msg.body[2:34]  # after client_version (RFC 6347 section 4.2.1)
    return None


def certificate_leaf(body: bytes) -> bytes | None:
    """The end-entity certificate of a Certificate message body; None if it holds none or does
    not parse."""
    try:
        chain = wire.parse_certificate(body)
    except wire.DtlsParseError:
        return None
    return chain[0] if chain else None


# -- the router ----------------------------------------------------------------------------------

HOLD_LIMIT = 8
"""Datagrams of a first flight held while its certificate has not come (`AssociationRouter`)."""
SUPERSEDED_LIMIT = 4
"""Associations a leg remembers after a rekey replaced them: enough for rekeys in a burst."""
_UNFINISHED = ("new", "handshaking")


class AssociationRouter:
    """Gives each DTLS datagram of a leg to the association it belongs to (`MediaLeg` has one
    from its first association on; `attach` adds a rekey's).

    Until a rekey puts a new association (`current`) beside older ones, everything goes to the
    one there is. After, while `current` has not finished its handshake, the plaintext (epoch 0)
    handshake of each DTLS datagram is read (`peek_flight`); SRTP never comes here, and nothing
    is read once the handshake is over (an established endpoint drops epoch-0 records itself).
    A stale message must never reach the new handshake: OpenSSL takes any message whose
    sequence number it expects, and a ServerHello, certificate, ServerKeyExchange or
    NewSessionTicket of another association fails it. So:

    - A whole Certificate message names its flight: the certificate matches the fingerprint of
      the current association, or of a superseded one (RFC 8122 section 5.1). A superseded
      association's flight goes to its driver, which drops it once it is closed; a certificate
      nobody signalled goes to the current association, which fails on it as it must (R2).
      A peer may use one certificate for every association: then the ServerKeyExchange tells,
      whose signature covers the random of the ClientHello it answers (`signed_for`); one that
      is not the current ClientHello's goes to the superseded association. Without a
      ServerKeyExchange in the datagrams that completed the certificate (no ECDHE, or a flight
      cut before it), the current association takes it.
    - A ServerHello without its certificate (a flight cut across datagrams, RFC 6347 section
      4.1.1) is held, with the certificate's pieces that follow it, until they complete the
      certificate; then the whole goes where the certificate goes, in order. The later messages
      of a decided flight (ServerKeyExchange onward, in datagrams of their own) follow it.
    - Whatever cannot be told is dropped, never guessed: a second ServerHello with another
      random while one is held (two servers' flights interleaved: both), certificate pieces
      or a flight's later messages whose ServerHello was not seen, pieces that disagree, more
      than `HOLD_LIMIT` datagrams. The peer resends a flight whole when its timer runs out (RFC
      6347 section 4.2.4): a doubt costs a retransmission, never the handshake.
    - A server's last flight (a NewSessionTicket, a plaintext ChangeCipherSpec) answers a
      client's Finished: it is dropped while the current client has not sent its own.
    - Anything else (a ClientHello, alerts, records of epoch 1 and later) goes to the current
      association, as on a leg that never rekeyed.

    What stays possible: after a flight was decided, a later message of another flight cut
    into several datagrams (a ServerKeyExchange in a datagram of its own) that arrives before
    that flight's own ServerHello follows the decided one. It takes two servers whose flights
    are both cut up and interleaved; the reference sends each flight in one datagram.

    Counters: `stale` (datagrams given to a superseded association), `unattributed`
    (datagrams dropped because nothing told whose they were).
    """

    def __init__(self, first: DtlsDriver) -> None:
        self.current = first
        """The newest association: everything goes to it that is not known to be another's."""
        self.superseded: deque[DtlsDriver] = deque(maxlen=SUPERSEDED_LIMIT)
        self.stale = self.unattributed = 0
        self._held: list[bytes] = []
        self._held_random: bytes | None = None
        self._pieces: wire.HandshakeReassembler | None = None
        self._flight_owner: DtlsDriver | None = None
        """Whose the last flight a certificate decided was: its later messages go there."""

    def __repr__(self) -> str:
        return (
            f"AssociationRouter({len(self.superseded)} superseded, stale={self.stale}, "
            f"unattributed={self.unattributed}, held={len(self._held)})"
        )

    @classmethod
    def attach(cls, router: AssociationRouter | None, driver: DtlsDriver) -> AssociationRouter:
        """`router` (None on a leg without DTLS yet) with `driver` as its newest association; a
        rekey's: the one before it stays open (whoever made it closes it once its keys are no
        longer in use), and its late flights go to it, not to the new handshake."""
        if router is None:
            return cls(driver)
        if driver is not router.current:
            router.superseded.append(router.current)
            router.current = driver
        return router

    def datagram(self, data: bytes) -> None:
        """Hand one DTLS datagram to the association it belongs to (see the class docstring)."""
        current = self.current
        if current.endpoint.state not in _UNFINISHED or not self.superseded:
            if self._held:
                self._drop_held()
            current.datagram(data)
            return
        peek = peek_flight(data)
        if peek is None:
            current.datagram(data)
            return
        if peek.server_random is not None:  # a server's first flight starts here
            self._flight_owner = None
            if self._held:
                other = self._held_random != peek.server_random  # else a retransmission
                self._drop_held()
                if other:  # two servers' flights, neither decided: whose is whose is unknown
                    self.unattributed += 1
                    return
            self._held_random = peek.server_random
            if peek.certificate is not None:
                self._decide(peek.certificate, [data], current, peek.server_key_exchange)
                return
            self._held = [data]
            if peek.certificate_fragments:
                self._reassemble(peek, current)
            return
        if peek.certificate is not None:
            self._decide(peek.certificate, [*self._held, data], current, peek.server_key_exchange)
            return
        if peek.certificate_fragments:
            if not self._held:  # its ServerHello was not seen: nothing says whose it is
                self.unattributed += 1
                return
            if len(self._held) >= HOLD_LIMIT:
                self._drop_held()
                self.unattributed += 1
                return
            self._held.append(data)
            self._reassemble(peek, current)
            return
        if peek.first_flight:  # ServerKeyExchange .. ServerHelloDone in a datagram of their own
            if self._held or self._flight_owner is None:  # not the held flight's: too early
                self.unattributed += 1
                return
            self._deliver(self._flight_owner, current, data)
            return
        ep = current.endpoint
        if peek.final_flight and ep.role == "client" and not ep.finished_sent:
            self.stale += 1  # the answer to a Finished this association has not sent
            return
        current.datagram(data)

    def close(self) -> None:
        """Close every association of the leg (`DtlsDriver.close`: idempotent)."""
        self._drop_held()
        self.current.close()
        for driver in self.superseded:
            driver.close()

    def _decide(
        self,
        certificate: bytes,
        datagrams: list[bytes],
        current: DtlsDriver,
        key_exchange: bytes | None,
    ) -> None:
        """`datagrams` are the flight whose certificate this is: give them to its association."""
        owner = self._owner_of(certificate, current, self._held_random, key_exchange)
        self._held, self._held_random, self._pieces = [], None, None
        self._flight_owner = owner
        for data in datagrams:
            self._deliver(owner, current, data)

    def _owner_of(
        self,
        certificate: bytes,
        current: DtlsDriver,
        server_random: bytes | None,
        key_exchange: bytes | None,
    ) -> DtlsDriver:
        older = [old for old in reversed(self.superseded) if old.endpoint.expects(certificate)]
        if not current.endpoint.expects(certificate):
            return older[0] if older else current  # signalled for none: current judges it
        client_random = current.endpoint.client_random
        if older and key_exchange and server_random and client_random:
            # One certificate for several associations: whose ClientHello did it answer?
            signed = signed_for(key_exchange, client_random, server_random, certificate)
            if signed is False:
                return older[0]
        return current

    def _deliver(self, owner: DtlsDriver, current: DtlsDriver, data: bytes) -> None:
        if owner is not current:
            self.stale += 1
        owner.datagram(data)  # a closed endpoint drops it and counts it

    def _reassemble(self, peek: FlightPeek, current: DtlsDriver) -> None:
        """Add the held flight's certificate pieces; decide the flight once they are whole."""
        if self._pieces is None:
            self._pieces = wire.HandshakeReassembler(max_pending=1)
        try:
            for fragment in peek.certificate_fragments:
                message = self._pieces.add(fragment)
                if message is not None:
                    leaf = certificate_leaf(message.body) or b""
                    self._decide(leaf, self._held, current, peek.server_key_exchange)
                    return
        except wire.DtlsParseError:  # pieces that disagree: not one certificate
            self._drop_held()

    def _drop_held(self) -> None:
        self.unattributed += len(self._held)
        self._held, self._held_random, self._pieces = [], None, None
