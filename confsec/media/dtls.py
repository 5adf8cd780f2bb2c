"""DTLS-SRTP (RFC 5763, RFC 5764), sans-IO: one DTLS 1.2 endpoint on pyOpenSSL memory BIOs.

Fed datagrams and handed the clock (aioquic's shape): `receive_datagram()`,
`datagrams_to_send()`, `next_timer()` / `handle_timer()`, `next_event()`; no socket
(`dtls_leg` runs it on a media leg). Pure parts: `dtls_records`; the wire: `codec.dtls`.

- No chain is verified: RFC 5763 section 5 allows self-signed certificates and binds them to
  the signalled `a=fingerprint`s instead (RFC 8122: several may come, the strongest hash
  counts). Known in time, a mismatch aborts the handshake inside OpenSSL (fatal unknown_ca)
  before any key exists. The offerer may hear the ClientHello before the SDP answer (RFC 5763
  section 5): without a fingerprint the handshake runs but stops in `awaiting_fingerprint`,
  reporting nothing and exporting no key, until `set_expected_fingerprint()`; a mismatch then
  fails it with close_notify (the peer reads epoch 1 by then). `check_fingerprint=False` is the
  defect switch "does not check the peer's fingerprint"; the fingerprint is recorded anyway.
- No SRTP protection profile in common, or a selected one that does not encrypt, fails with a
  reason naming the offers. OpenSSL itself would complete without SRTP, so the endpoint
  withholds OpenSSL's next flight and sends a fatal alert of its own.
- NULL profiles: OpenSSL (4.0.3 in cryptography 50's wheel, like 3.x) knows no
  `SRTP_NULL_SHA1_80` / `_32`: `allow_null_profile` asks for them, falls back when OpenSSL
  refuses, and `null_profiles_offered` tells which.
- The server does the cookie exchange (RFC 6347 section 4.2.1) with `DTLSv1_listen`. The cookie
  is random per endpoint, not bound to an address: it shows that the peer handles a
  HelloVerifyRequest, and does not resist spoofing. `cookies=False` turns it off.
- Nothing that arrives raises: datagrams that are not DTLS (RFC 7983) or do not frame are
  dropped and counted; whatever OpenSSL refuses ends the handshake with a reason.
- Keys are never stored or shown: `srtp_keys()` exports them on each call; `SrtpKeys` prints
  lengths and `ledger.key_fingerprint` only.

OpenSSL's retransmission timer runs on real time: `handle_timer()` at a fake time ahead of the
real one retransmits nothing and re-arms.
"""

from __future__ import annotations

import hmac
import os
from collections import deque
from collections.abc import Callable
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from OpenSSL import SSL, crypto

from confsec.codec import dtls as wire
from confsec.codec.sdp import certificate_matches
from confsec.errors import LocalProtocolError
from confsec.media import dtls_records
from confsec.media.dtls_records import (
    DEFAULT_PROFILES,
    NULL_PROFILES,
    ConnectionClosed,
    DatagramKind,
    DtlsError,
    DtlsEvent,
    Fingerprints,
    HandshakeCompleted,
    HandshakeFailed,
    SrtpKeys,
    classify,
    fingerprint_of,
    self_signed_identity,
    suite_for_profile,
)

__all__ = [
    "DEFAULT_PROFILES",
    "NULL_PROFILES",
    "ConnectionClosed",
    "DatagramKind",
    "DtlsError",
    "DtlsEvent",
    "DtlsSrtpEndpoint",
    "Fingerprints",
    "HandshakeCompleted",
    "HandshakeFailed",
    "SrtpKeys",
    "classify",
    "fingerprint_of",
    "self_signed_identity",
    "suite_for_profile",
]

Role = Literal["client", "server"]
State = Literal["new", "handshaking", "awaiting_fingerprint", "connected", "failed", "closed"]
_LIVE = ("handshaking", "awaiting_fingerprint", "connected")
"""States in which datagrams are read."""

_DTLS1_2_VERSION = 0xFEFD
_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
_ALERT_FATAL = 2
_HANDSHAKE_FAILURE = 40
_BAD_CERTIFICATE = 42


class DtlsSrtpEndpoint:
    """One side of a DTLS-SRTP association, sans-IO. See the module docstring.

    Counters: `dropped` (datagrams not DTLS, or arriving after the end), `malformed` (octets
    that do not frame as records), `retransmissions` (flights OpenSSL resent), `application_data`
    (application data records after the handshake: DTLS-SRTP uses none, they are discarded).
    """

    def __init__(
        self,
        role: Role,
        certificate: x509.Certificate,
        private_key: CertificateIssuerPrivateKeyTypes,
        *,
        srtp_profiles: tuple[str, ...] = DEFAULT_PROFILES,
        expected_fingerprint: Fingerprints | None = None,
        check_fingerprint: bool = True,
        allow_null_profile: bool = False,
        mtu: int = 1200,
        cookies: bool = True,
        handshake_timeout: float | None = 30.0,
        keylog: Callable[[bytes], None] | None = None,
    ) -> None:
        """`expected_fingerprint`: the peer's `a=fingerprint` (text, a `FingerprintAttribute`,
        or several of either); None while the signalling has not brought it yet. `keylog` gets
        the NSS key log line (`CLIENT_RANDOM ...`) for `confsec analyze`; it must not raise."""
        problem = dtls_records.settings_problem(
            role, mtu, srtp_profiles, allow_null=allow_null_profile
        )
        if problem is not None:
            raise LocalProtocolError(problem)
        self.role: Role = role
        self.mtu = mtu
        self.check_fingerprint = check_fingerprint
        self.allow_null_profile = allow_null_profile
        self.handshake_timeout = handshake_timeout
        fp = expected_fingerprint
        self._expected = None if fp is None else dtls_records.signalled_fingerprints(fp)
        self.state: State = "new"
        self.failure_reason: str | None = None
        self.close_reason: str | None = None
        self.selected_profile: str | None = None
        self.peer_certificate: bytes | None = None
        """The peer's DER certificate, once OpenSSL has read it (public: not a secret)."""
        self.peer_fingerprint: str | None = None
        """Its `a=fingerprint` value, in the signalled hash (sha-256 while none is known)."""
        self.peer_offered_profiles: tuple[str, ...] | None = None
        """Server side: the profiles the ClientHello offered, when it could be read."""
        self.alerts_received: list[str] = []
        self.alerts_sent: list[str] = []
        self.dropped = self.malformed = self.retransmissions = self.application_data = 0
        self._events: deque[DtlsEvent] = deque()
        self._out: list[bytes] = []
        self._timer_at: float | None = None
        self._deadline: float | None = None
        self.handshake_done_at: float | None = None  # OpenSSL's end, before any late fingerprint
        self._listening = role == "server" and cookies
        self._completed = False
        self._mismatch: str | None = None
        self._negotiation_checked = False
        self._sent_epoch1, self._next_seq0 = False, 0
        self._version = _DTLS1_2_VERSION
        self._cookie = os.urandom(16)

        offered = tuple(srtp_profiles)
        if allow_null_profile:
            offered += tuple(p for p in NULL_PROFILES if p not in offered)
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_min_proto_version(_DTLS1_2_VERSION)
        ctx.set_max_proto_version(_DTLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_QUERY_MTU)
        ctx.use_certificate(certificate)
        ctx.use_privatekey(private_key)
        ctx.check_privatekey()
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        try:
            ctx.set_tlsext_use_srtp(":".join(offered).encode())
        except SSL.Error:
            if not allow_null_profile:
                raise
            offered = tuple(p for p in offered if p not in NULL_PROFILES)
            ctx.set_tlsext_use_srtp(":".join(offered).encode())
        self.offered_profiles = offered
        self.null_profiles_offered = any(p in NULL_PROFILES for p in offered)
        if keylog is not None:
            ctx.set_keylog_callback(lambda _conn, line: keylog(line))
        if self._listening:
            ctx.set_cookie_generate_callback(lambda _conn: self._cookie)
            ctx.set_cookie_verify_callback(lambda _c, ck: hmac.compare_digest(ck, self._cookie))
        conn = SSL.Connection(ctx, None)
        conn.set_ciphertext_mtu(mtu)
        conn.set_info_callback(self._info)
        if role == "client":
            conn.set_connect_state()
        else:
            conn.set_accept_state()
        self._conn = conn

    def __repr__(self) -> str:
        what = self.selected_profile or self.failure_reason or ""
        return f"DtlsSrtpEndpoint({self.role}, {self.state}{', ' if what else ''}{what})"

    # -- OpenSSL callbacks (they must never raise: pyOpenSSL would re-raise from the call) -------

    def _verify(self, _conn: SSL.Connection, cert: crypto.X509, _err: int, depth: int, _ok: int):
        if depth != 0:
            return True  # any chain: RFC 5763 binds the leaf to the signalling instead
        try:
            der = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)
            self.peer_certificate = der
            self.peer_fingerprint = dtls_records.peer_fingerprint(der, self._expected)
            if not self.check_fingerprint or self._expected is None:
                return True  # unchecked, or checked by set_expected_fingerprint()
            self._mismatch = dtls_records.fingerprint_problem(der, self._expected)
        except Exception as exc:  # never let a callback raise into OpenSSL
            self._mismatch = f"cannot read the peer certificate: {exc}"
        return self._mismatch is None

    def _info(self, _conn: SSL.Connection, where: int, ret: int) -> None:
        if where & SSL.SSL_CB_ALERT:
            name = dtls_records.alert_name(ret >> 8, ret & 0xFF)
            (self.alerts_received if where & SSL.SSL_CB_READ else self.alerts_sent).append(name)

    # -- the public face -----------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin: the client sends its ClientHello, the server starts waiting for one."""
        if self.state != "new":
            return
        self.state = "handshaking"
        if self.handshake_timeout is not None:
            self._deadline = now + self.handshake_timeout
        if self.role == "client":
            self._drive(now)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Feed one datagram from the peer. Never raises for what the datagram holds."""
        if self.state == "new" and self.role == "server":
            self.start(now)
        if self.state not in _LIVE or classify(data) != "dtls":
            self.dropped += 1
            return
        try:
            data = bytes(data)
            records, junk = dtls_records.frame_records(data)
            if junk:
                self.malformed += 1
            for rec, raw in records:
                if self.state not in _LIVE:
                    break
                if dtls_records.record_problem(rec) is None:
                    self._feed(rec, raw, now)
                else:
                    self.malformed += 1
            self._rearm(now)
        except Exception as exc:  # a bug here must not become a traceback in the caller's loop
            self._fail(f"confsec internal error handling a datagram: {exc!r}", now)

    def set_expected_fingerprint(self, fingerprints: Fingerprints, now: float) -> None:
        """The peer's `a=fingerprint`(s), once the signalling brings them (RFC 5763 section 5).

        A handshake waiting in `awaiting_fingerprint` completes if they match and fails if not
        (close_notify, no key exported); one under way is checked now if the certificate is in,
        else when it comes. An association whose certificate no longer matches is closed (a
        new fingerprint needs a new association). Text is parsed by `signalled_fingerprints`.
        """
        self._expected = dtls_records.signalled_fingerprints(fingerprints)
        der = self.peer_certificate
        if der is not None:
            self.peer_fingerprint = dtls_records.peer_fingerprint(der, self._expected)
        if not self.check_fingerprint or der is None or self.state not in _LIVE:
            return
        problem = dtls_records.fingerprint_problem(der, self._expected)
        if problem is not None:
            self._refuse(problem, _BAD_CERTIFICATE, now)  # connected: close_notify, closed
        elif self.state == "awaiting_fingerprint":
            self._connect(now)

    def expects(self, certificate: bytes) -> bool:
        """Whether `certificate` (DER) matches the fingerprint signalled for this association:
        which association a flight is for, on a leg a rekey shares (`dtls_demux`)."""
        return self._expected is not None and certificate_matches(self._expected, certificate)

    @property
    def client_random(self) -> bytes | None:
        """A client's ClientHello random, once sent (what a ServerKeyExchange signs)."""
        return (self._conn.client_random() or None) if self.role == "client" else None

    @property
    def finished_sent(self) -> bool:
        """This side has sent epoch-1 records: a peer's last flight can answer it."""
        return self._sent_epoch1

    def datagrams_to_send(self) -> list[bytes]:
        """What to send now, in order: whole records, at most `mtu` octets per datagram."""
        records, self._out = self._out, []
        if any(int.from_bytes(r[3:5]) >= 1 for r in records):
            self._sent_epoch1 = True
        return dtls_records.pack_datagrams(records, self.mtu)

    def next_timer(self) -> float | None:
        """When `handle_timer()` is next due (retransmission or deadline), or None."""
        times = [t for t in (self._timer_at, self._deadline) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Retransmit a lost flight, or give up once the handshake deadline has passed."""
        if self.state not in ("handshaking", "awaiting_fingerprint"):
            return
        if self._deadline is not None and now >= self._deadline:
            what = "no DTLS handshake"
            if self.state == "awaiting_fingerprint":  # the handshake is done, not the answer
                self._shutdown(now)
                what = "DTLS handshake done, but no peer fingerprint signalled"
            tries = f"{self.retransmissions} retransmissions"
            self._fail(f"{what} within {self.handshake_timeout:g} s ({tries})", now, timed_out=True)
            return
        if self.state != "handshaking" or self._timer_at is None or now < self._timer_at:
            return
        try:
            if self._conn.DTLSv1_handle_timeout():
                self.retransmissions += 1
        except SSL.Error as exc:
            self._failed_in_openssl(exc, now, len(self.alerts_received))
            return
        self._collect(now)
        self._rearm(now)

    def next_event(self) -> DtlsEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def close(self, now: float) -> None:
        """Send close_notify on an established association; abandon a handshake under way."""
        if self.state in ("failed", "closed"):
            return
        if self.state != "new":
            self._shutdown(now)
        self._fail("closed by this side", now)

    def srtp_keys(self) -> SrtpKeys:
        """The SRTP master keys, exported anew on each call (RFC 5764 section 4.2).

        Raises `DtlsError` after a failed handshake and `LocalProtocolError` before the end of
        one, or while the peer's fingerprint is not known: no key ever comes out of an
        association that was not verified.
        """
        if self.state == "failed":
            raise DtlsError(f"no SRTP keys: {self.failure_reason}")
        if self.state not in ("connected", "closed") or self.selected_profile is None:
            raise LocalProtocolError(f"srtp_keys() asked in state {self.state}: no verified DTLS")
        profile = self.selected_profile
        material = self._conn.export_keying_material(_EXPORTER_LABEL, SrtpKeys.length(profile))
        return SrtpKeys.from_export(material, profile, self.role)

    # -- driving OpenSSL -----------------------------------------------------------------------

    def _feed(self, rec: wire.DtlsRecord, raw: bytes, now: float) -> None:
        if self.role == "server" and not self._completed and rec.content_type == wire.HANDSHAKE:
            offer = dtls_records.client_hello_srtp_profiles(rec)
            if offer is not None:
                self.peer_offered_profiles = tuple(dtls_records.profile_name(c) for c in offer)
        self._conn.bio_write(raw)
        if not self._listening:
            self._drive(now)
            return
        try:
            self._conn.DTLSv1_listen()
        except SSL.WantReadError:
            if not self._collect(now, check=False):
                self.dropped += 1  # nothing DTLSv1_listen could answer
            return
        except SSL.Error:
            self.dropped += 1
            self._collect(now, check=False)
            return
        self._listening = False
        self._conn.bio_write(raw)  # the ClientHello with the right cookie, for the handshake
        self._drive(now)

    def _drive(self, now: float) -> None:
        conn = self._conn
        alerts_before = len(self.alerts_received)
        try:
            if self.state == "handshaking":
                conn.do_handshake()
            else:
                while True:
                    conn.recv(65536)
                    self.application_data += 1
        except SSL.WantReadError:
            self._collect(now)
        except SSL.ZeroReturnError:
            self._collect(now, check=False)
            during = {"connected": "", "awaiting_fingerprint": " before its fingerprint was known"}
            self._fail(
                f"peer sent close_notify{during.get(self.state, ' during the handshake')}", now
            )
        except SSL.Error as exc:
            self._failed_in_openssl(exc, now, alerts_before)
        else:
            if self.state == "handshaking":
                self._collect(now)
                if self.state == "handshaking":
                    self._complete(now)
        self._rearm(now)

    def _collect(self, now: float, *, check: bool = True) -> bool:
        """Move OpenSSL's output to the send queue as records; True if there was any."""
        data = b""
        while True:
            try:
                data += self._conn.bio_read(65536)
            except SSL.WantReadError:
                break
        records, _ = dtls_records.frame_records(data)
        for rec, _raw in records:
            if rec.epoch == 0:
                self._version = rec.version
                self._next_seq0 = max(self._next_seq0, rec.sequence_number + 1)
        if check and self.state == "handshaking":
            problem = self._negotiation_problem(bool(records))
            if problem is not None:
                self._refuse(*problem, now)
                return bool(records)
        self._out.extend(raw for _, raw in records)
        return bool(records)

    def _negotiation_problem(self, spoke: bool) -> tuple[str, int] | None:
        """Why the negotiated profile is unacceptable, once it is known; else None."""
        if self._negotiation_checked:
            return None
        if self.role == "client":
            if self._conn.get_peer_certificate() is None:
                return None  # the server's first flight is not in yet
        elif not spoke or self._listening:
            return None  # a server speaks once it has read the ClientHello
        self._negotiation_checked = True
        return dtls_records.negotiation_problem(
            self.role,
            self._conn.get_selected_srtp_profile().decode("ascii", "replace"),
            self.offered_profiles,
            self.peer_offered_profiles,
            allow_null=self.allow_null_profile,
        )

    def _complete(self, now: float) -> None:
        self._negotiation_checked = False
        problem = self._negotiation_problem(True)
        if problem is None and self._conn.get_peer_certificate() is None:
            problem = "the peer presented no certificate", _HANDSHAKE_FAILURE
        if problem is None and self._mismatch is not None:
            problem = self._mismatch, _BAD_CERTIFICATE
        if problem is not None:
            self._refuse(*problem, now)
            return
        self.selected_profile = self._conn.get_selected_srtp_profile().decode("ascii")
        self._completed, self._timer_at, self.handshake_done_at = True, None, now
        if self.check_fingerprint and self._expected is None:
            self.state = "awaiting_fingerprint"  # RFC 5763 section 5: the answer comes later
            return
        self._connect(now)

    def _connect(self, now: float) -> None:
        self.state = "connected"
        self._timer_at = self._deadline = None
        profile = self.selected_profile or ""
        self._events.append(HandshakeCompleted(profile, self.peer_fingerprint or "", now))

    def _refuse(self, reason: str, description: int, now: float) -> None:
        """End the handshake ourselves: withhold OpenSSL's pending output, send a fatal alert."""
        self._out.clear()
        if not self._sent_epoch1:
            seq, self._next_seq0 = self._next_seq0, self._next_seq0 + 1
            alert = dtls_records.alert_record(self._version, 0, seq, _ALERT_FATAL, description)
            self._out.append(alert)
            self.alerts_sent.append(dtls_records.alert_name(_ALERT_FATAL, description))
        else:  # the peer reads epoch 1 now: the best we can say is close_notify
            self._shutdown(now)
        self._fail(reason, now)

    def _shutdown(self, now: float) -> None:
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass
        self._collect(now, check=False)

    def _failed_in_openssl(self, exc: SSL.Error, now: float, alerts_before: int) -> None:
        self._collect(now, check=False)  # the alert OpenSSL wrote, if any
        new_alerts = self.alerts_received[alerts_before:]
        if self._mismatch is not None:
            reason = self._mismatch
        elif new_alerts:
            reason = f"peer alert {new_alerts[-1]}"
        else:
            errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else None
            detail = "; ".join(str(e[-1]) for e in errors) if errors else str(exc) or repr(exc)
            reason = f"DTLS {'handshake' if not self._completed else 'record'} error: {detail}"
        self._fail(reason, now)

    def _fail(self, reason: str, now: float, *, timed_out: bool = False) -> None:
        """End the handshake (state failed) or an established association (state closed)."""
        if self.state in ("failed", "closed"):
            return
        self._timer_at = self._deadline = None
        if self.state == "connected":
            self.state, self.close_reason = "closed", reason
            self._events.append(ConnectionClosed(reason, now))
        else:
            self.state, self.failure_reason = "failed", reason
            self._events.append(HandshakeFailed(reason, now, timed_out))

    def _rearm(self, now: float) -> None:
        self._timer_at = None
        if self.state == "handshaking" and not self._listening:
            left = self._conn.DTLSv1_get_timeout()
            if left is not None:
                self._timer_at = now + left
