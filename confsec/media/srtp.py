"""SRTP sessions for confsec: thin wrappers over libsrtp (pylibsrtp) and the one factory.

Every SRTP session in confsec, a participant's or the reference deployment's, is made by
`new_sender()` / `new_receiver()` (or `new_session()`, which picks one from the stream's
direction). The factory registers the stream's master key and salt with the run's
`KeyStreamLedger`, and the wrappers tell the ledger the SSRCs they carry and fingerprints of the
first packets, so that requirement R4 (distinct key streams) is checked on what actually went
over the wire, not on what the signalling promised.

libsrtp does the cryptography; `confsec.media.reference_srtp` re-implements it independently
and the tests hold the two to byte-for-byte agreement.

libsrtp reports every problem as one exception type with a message; the receiver maps the
messages to `SrtpAuthError` / `SrtpReplayError` (both `RemoteProtocolError`: the peer sent
them) and counts them, and `try_unprotect()` returns None instead of raising for the media
hot path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pylibsrtp

from confsec.errors import ConfsecError, LocalProtocolError, RemoteProtocolError
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import RTP_HEADER_LEN, RtpParseError, rtp_header_length
from confsec.media.srtcp_clear import CLEAR_REPLAYED, CLEAR_TAG, ClearSrtcp
from confsec.media.srtp_observer import Observer as _Observer

__all__ = [
    "AUTH_FAILED",
    "MALFORMED",
    "NULL_SUITES",
    "OK",
    "PROFILES",
    "REPLAYED",
    "SrtpAuthError",
    "SrtpError",
    "SrtpProfile",
    "SrtpReceiver",
    "SrtpReplayError",
    "SrtpSender",
    "UnsupportedSuite",
    "new_master_key",
    "new_receiver",
    "new_sender",
    "new_session",
    "profile_for",
]

_Policy = pylibsrtp.Policy

# Largest datagram pylibsrtp's fixed buffer takes (it raises ValueError beyond).
_MAX_SRTP_LEN = 1500

#: `SrtpReceiver.last_status` values.
OK = 0
AUTH_FAILED = 1
REPLAYED = 2
MALFORMED = 3


class UnsupportedSuite(ConfsecError):
    """The crypto suite is unknown, or one confsec refuses to run (the NULL ciphers)."""


class SrtpError(RemoteProtocolError):
    """An SRTP packet from the peer was refused."""


class SrtpAuthError(SrtpError):
    """The packet did not authenticate under the stream's key (tampered, wrong key, plain RTP)."""


class SrtpReplayError(SrtpError):
    """The packet index was already seen, or is older than the replay window."""


@dataclass(frozen=True)
class SrtpProfile:
    """An SRTP crypto suite as libsrtp runs it (aiortc's `SRTPProtectionProfile`, extended)."""

    name: str
    """The SDES suite name (RFC 4568 / RFC 7714), as in `a=crypto`."""
    key_len: int
    """Master key length in octets."""
    salt_len: int
    """Master salt length in octets."""
    auth_tag_len: int
    """Octets the tag adds to each packet."""
    aead: bool
    """True for AES-GCM (RFC 7714), where the tag comes from the cipher."""
    libsrtp_profile: int
    """The `pylibsrtp.Policy.SRTP_PROFILE_*` value."""

    @property
    def master_len(self) -> int:
        """Length of key || salt, as carried in SDES `inline:`."""
        return self.key_len + self.salt_len


PROFILES: dict[str, SrtpProfile] = {
    p.name: p
    for p in (
        SrtpProfile(
            "AES_CM_128_HMAC_SHA1_80", 16, 14, 10, False, _Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        ),
        SrtpProfile(
            "AES_CM_128_HMAC_SHA1_32", 16, 14, 4, False, _Policy.SRTP_PROFILE_AES128_CM_SHA1_32
        ),
        SrtpProfile("AEAD_AES_128_GCM", 16, 12, 16, True, _Policy.SRTP_PROFILE_AEAD_AES_128_GCM),
        SrtpProfile("AEAD_AES_256_GCM", 32, 12, 16, True, _Policy.SRTP_PROFILE_AEAD_AES_256_GCM),
    )
}

# DTLS-SRTP protection-profile names (RFC 5764 / RFC 7714) for the same transforms.
_ALIASES = {
    "SRTP_AES128_CM_HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
}

#: Suites that authenticate without encrypting: a secure conference must refuse them (R3).
NULL_SUITES = frozenset(
    {"NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32", "SRTP_NULL_HMAC_SHA1_80", "SRTP_NULL_HMAC_SHA1_32"}
)


def profile_for(suite: str) -> SrtpProfile:
    """The profile for an SDES suite name (or its DTLS-SRTP alias).

    Raises `UnsupportedSuite` for an unknown name and for the NULL ciphers, which confsec never
    runs: a participant that accepted them would itself break R3.
    """
    name = _ALIASES.get(suite, suite)
    try:
        return PROFILES[name]
    except KeyError:
        pass
    if suite in NULL_SUITES:
        raise UnsupportedSuite(f"{suite} does not encrypt; confsec does not run null ciphers")
    raise UnsupportedSuite(f"unknown SRTP crypto suite {suite!r}")


def new_master_key(suite: str) -> tuple[bytes, bytes]:
    """Fresh random (master key, master salt) for a suite, from the OS CSPRNG."""
    p = profile_for(suite)
    return os.urandom(p.key_len), os.urandom(p.salt_len)


def _check_lengths(p: SrtpProfile, key: bytes, salt: bytes) -> None:
    if len(key) != p.key_len or len(salt) != p.salt_len:
        raise LocalProtocolError(
            f"{p.name} takes a {p.key_len}-octet master key and a {p.salt_len}-octet salt, "
            f"not {len(key)} and {len(salt)}"
        )


class SrtpSender:
    """Protects outgoing RTP for one stream. Make it with `new_sender()`."""

    __slots__ = (
        "_last_rtcp_ssrc",
        "_last_ssrc",
        "_observer",
        "_protect",
        "_protect_rtcp",
        "packets",
        "profile",
        "rtcp_packets",
        "stream",
    )

    def __init__(
        self,
        profile: SrtpProfile,
        key: bytes,
        salt: bytes,
        stream: StreamId | None = None,
        observer: _Observer | None = None,
        *,
        allow_repeat_tx: bool = False,
    ) -> None:
        if not isinstance(profile, SrtpProfile) or stream is None or observer is None:
            raise LocalProtocolError(
                "create SRTP sessions with new_sender()/new_receiver(), so that the key-stream "
                "ledger records them"
            )
        policy = _Policy(
            key=key + salt,
            ssrc_type=_Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile.libsrtp_profile,
        )
        policy.allow_repeat_tx = allow_repeat_tx
        session = pylibsrtp.Session(policy=policy)
        self._protect = session.protect
        # SRTCP: the same master key, its own session keys (RFC 3711 4.3.2, labels 3 to 5).
        self._protect_rtcp = session.protect_rtcp
        self.profile = profile
        self.stream = stream
        self.packets = 0
        self.rtcp_packets = 0
        self._observer = observer
        self._last_ssrc = b""
        self._last_rtcp_ssrc = b""

    def __repr__(self) -> str:
        return f"SrtpSender({self.stream!s}, {self.profile.name}, {self.packets} packets)"

    def protect(self, rtp: bytes) -> bytes:
        """RTP in, SRTP out. Refusals are confsec's fault, hence `LocalProtocolError`."""
        try:
            out = self._protect(rtp)
        except pylibsrtp.Error as exc:
            raise LocalProtocolError(f"libsrtp refused to protect a packet: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise LocalProtocolError(f"cannot protect this packet: {exc}") from None
        self.packets += 1
        if self._observer._wanted or out[8:12] != self._last_ssrc:
            self._last_ssrc = out[8:12]
            self._observer.seen_packet(out)
        return out

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """RTCP compound in, SRTCP out (encrypted, with the next SRTCP index and the tag)."""
        try:
            out = self._protect_rtcp(rtcp)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise LocalProtocolError(f"libsrtp refused to protect an RTCP packet: {exc}") from None
        self.rtcp_packets += 1
        if self._observer._rtcp_wanted or out[4:8] != self._last_rtcp_ssrc:
            self._last_rtcp_ssrc = out[4:8]
            self._observer.seen_rtcp(out, self.profile.aead)
        return out


class SrtpReceiver:
    """Checks and decrypts incoming SRTP for one stream. Make it with `new_receiver()`.

    Counters (`ok`, `auth_failed`, `replayed`, `malformed`) count every packet given to it;
    `last_status` / `last_reason` describe the last one, so that the hot path can classify a
    failure of `try_unprotect()` without an exception object.
    """

    __slots__ = (
        "_clear",
        "_last_rtcp_ssrc",
        "_last_ssrc",
        "_min_len",
        "_observer",
        "_unprotect",
        "_unprotect_rtcp",
        "auth_failed",
        "last_reason",
        "last_status",
        "malformed",
        "ok",
        "profile",
        "replayed",
        "rtcp",
        "stream",
    )

    def __init__(
        self,
        profile: SrtpProfile,
        key: bytes,
        salt: bytes,
        stream: StreamId | None = None,
        observer: _Observer | None = None,
        *,
        window_size: int | None = None,
    ) -> None:
        if not isinstance(profile, SrtpProfile) or stream is None or observer is None:
            raise LocalProtocolError(
                "create SRTP sessions with new_sender()/new_receiver(), so that the key-stream "
                "ledger records them"
            )
        policy = _Policy(
            key=key + salt, ssrc_type=_Policy.SSRC_ANY_INBOUND, srtp_profile=profile.libsrtp_profile
        )
        if window_size is not None:
            policy.window_size = window_size
        session = pylibsrtp.Session(policy=policy)
        self._unprotect = session.unprotect
        self._unprotect_rtcp = session.unprotect_rtcp
        self._clear = ClearSrtcp(profile.name, key, salt)
        self.profile = profile
        self.stream = stream
        self._observer = observer
        self._min_len = RTP_HEADER_LEN + profile.auth_tag_len
        self._last_ssrc = b""
        self._last_rtcp_ssrc = b""
        self.ok = 0
        self.auth_failed = 0
        self.replayed = 0
        self.malformed = 0
        self.last_status = OK
        self.last_reason = ""
        self.rtcp = {OK: 0, AUTH_FAILED: 0, REPLAYED: 0, MALFORMED: 0}
        """SRTCP packets given to `try_unprotect_rtcp`, by outcome."""

    def __repr__(self) -> str:
        return (
            f"SrtpReceiver({self.stream!s}, {self.profile.name}, ok={self.ok}, "
            f"auth_failed={self.auth_failed}, replayed={self.replayed}, "
            f"malformed={self.malformed})"
        )

    @property
    def packets(self) -> int:
        """Packets that authenticated."""
        return self.ok

    def counters(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "auth_failed": self.auth_failed,
            "replayed": self.replayed,
            "malformed": self.malformed,
        }

    def _malformed(self, reason: str) -> None:
        self.malformed += 1
        self.last_status = MALFORMED
        self.last_reason = reason

    def try_unprotect(self, srtp: bytes) -> bytes | None:
        """The RTP packet, or None when refused (see `last_status` and the counters)."""
        n = len(srtp)
        if n < self._min_len or n > _MAX_SRTP_LEN or srtp[0] >> 6 != 2:
            return self._refuse_shape(srtp)
        try:
            out = self._unprotect(srtp)
        except pylibsrtp.Error as exc:
            return self._refuse(str(exc))
        self.ok += 1
        self.last_status = OK
        # Steady state: one slice and one compare; the ledger sees new SSRCs and its sample.
        if self._observer._wanted or srtp[8:12] != self._last_ssrc:
            self._last_ssrc = srtp[8:12]
            self._observer.seen_packet(srtp)
        return out

    def try_unprotect_rtcp(self, srtcp: bytes) -> bytes | None:
        """The RTCP compound, or None when refused: `last_status` says why, `rtcp` counts.
        SRTCP has its own index and replay window (RFC 3711 3.4), apart from SRTP's."""
        try:
            out = self._unprotect_rtcp(srtcp)
        except pylibsrtp.Error as exc:
            out, clear = self._clear.open(srtcp)  # E=0 under AES-CM: libsrtp cannot (srtcp_clear)
            if out is None:
                msg = str(exc) if not clear else f"unencrypted SRTCP: {clear}"
                status = (
                    AUTH_FAILED
                    if msg.startswith("authentication") or clear == CLEAR_TAG
                    else REPLAYED
                    if msg.startswith("replay") or clear == CLEAR_REPLAYED
                    else MALFORMED
                )
                self.rtcp[status] += 1
                self.last_status, self.last_reason = status, msg
                return None
        except (ValueError, TypeError) as exc:
            self.rtcp[MALFORMED] += 1
            self.last_status, self.last_reason = MALFORMED, str(exc)
            return None
        self.rtcp[OK] += 1
        self.last_status = OK
        if self._observer._rtcp_wanted or srtcp[4:8] != self._last_rtcp_ssrc:
            self._last_rtcp_ssrc = srtcp[4:8]
            self._observer.seen_rtcp(srtcp, self.profile.aead)
        return out

    def _refuse_shape(self, srtp: bytes) -> None:
        n = len(srtp)
        if n < self._min_len:
            self._malformed(f"{n} octets is shorter than an RTP header and a tag")
        elif n > _MAX_SRTP_LEN:
            self._malformed(f"{n} octets is longer than the {_MAX_SRTP_LEN} libsrtp takes")
        else:
            self._malformed(f"bad RTP version {srtp[0] >> 6}, expected 2")

    def _refuse(self, msg: str) -> None:
        if msg.startswith("authentication"):
            self.auth_failed += 1
            self.last_status = AUTH_FAILED
        elif msg.startswith("replay"):
            self.replayed += 1
            self.last_status = REPLAYED
        else:
            self.malformed += 1
            self.last_status = MALFORMED
        self.last_reason = msg

    def unprotect(self, srtp: bytes) -> bytes:
        """The RTP packet; raises `SrtpAuthError`, `SrtpReplayError` or `RtpParseError`."""
        out = self.try_unprotect(srtp)
        if out is not None:
            return out
        status, reason = self.last_status, self.last_reason
        if status == AUTH_FAILED:
            raise SrtpAuthError(f"SRTP {reason} on {self.stream}")
        if status == REPLAYED:
            raise SrtpReplayError(f"SRTP {reason} on {self.stream}")
        # Name the header defect when there is one (this raises it); else libsrtp's reason.
        rtp_header_length(srtp)
        raise RtpParseError(f"not an SRTP packet: {reason}")


# ---------------------------------------------------------------------------------------------
# The factory.


def _make(
    ledger: KeyStreamLedger, stream: StreamId, suite: str, key: bytes, salt: bytes
) -> tuple[SrtpProfile, bytes, bytes, _Observer]:
    p = profile_for(suite)
    key, salt = bytes(key), bytes(salt)
    _check_lengths(p, key, salt)
    return p, key, salt, _Observer(ledger, stream)


def new_sender(
    ledger: KeyStreamLedger,
    stream: StreamId,
    suite: str,
    key: bytes,
    salt: bytes,
    *,
    allow_repeat_tx: bool = False,
) -> SrtpSender:
    """Create the SRTP sender of `stream` and register its keys with the ledger.

    `allow_repeat_tx` lets a defect switch protect one index twice (a deliberate two-time pad
    that the ledger must then report).
    """
    if stream.direction != "send":
        raise LocalProtocolError(f"new_sender() given a {stream.direction} stream {stream}")
    p, key, salt, obs = _make(ledger, stream, suite, key, salt)
    sender = SrtpSender(p, key, salt, stream, obs, allow_repeat_tx=allow_repeat_tx)
    ledger.register(stream, p.name, key, salt, packets=_counter(sender))
    return sender


def new_receiver(
    ledger: KeyStreamLedger,
    stream: StreamId,
    suite: str,
    key: bytes,
    salt: bytes,
    *,
    window_size: int | None = None,
) -> SrtpReceiver:
    """Create the SRTP receiver of `stream` and register its keys with the ledger."""
    if stream.direction != "recv":
        raise LocalProtocolError(f"new_receiver() given a {stream.direction} stream {stream}")
    p, key, salt, obs = _make(ledger, stream, suite, key, salt)
    receiver = SrtpReceiver(p, key, salt, stream, obs, window_size=window_size)
    ledger.register(stream, p.name, key, salt, packets=_counter(receiver))
    return receiver


class _HasCrypto(Protocol):
    suite: str
    key: bytes
    salt: bytes


def new_session(
    ledger: KeyStreamLedger, stream: StreamId, crypto: _HasCrypto
) -> SrtpSender | SrtpReceiver:
    """DESIGN.md's form: a sender or receiver from a parsed `a=crypto` (anything with
    `suite`, `key`, `salt`), chosen by the stream's direction."""
    if stream.direction == "send":
        return new_sender(ledger, stream, crypto.suite, crypto.key, crypto.salt)
    return new_receiver(ledger, stream, crypto.suite, crypto.key, crypto.salt)


def _counter(session: SrtpSender | SrtpReceiver) -> Callable[[], int]:
    # A weak link would be nicer, but sessions are short-lived objects of one run anyway and
    # the ledger lives exactly as long as the run.
    return lambda: session.packets
