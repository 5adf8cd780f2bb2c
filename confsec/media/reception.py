"""What a media leg makes of each datagram it receives, sans-IO: the judgement and what is heard.

`Reception` is the receive half of `confsec.media.endpoint.MediaLeg`, which adds the socket,
the pacing and the waiting. It classifies each datagram as SRTP that authenticated, failed
authentication or was replayed, plain RTP, RTCP, not RTP at all, or held until its key is known,
counts each kind, and keeps the last seconds of PCMU per SSRC for the tone check. It has no
clock: the arrival time comes in with the datagram.

This is the media hot path (50 packets per second per leg, up to 50 participants), so the leg
inherits it rather than holding it: the judgement runs as the leg's own method on the leg's own
counters, with no call or object per packet beyond the SRTP receiver's.
"""

from __future__ import annotations

import ipaddress
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from confsec.media.rtcp import is_plain_rtcp
from confsec.media.rtp import RtpParseError, rtp_payload_bounds
from confsec.media.srtp import AUTH_FAILED, OK, REPLAYED, SrtpReceiver
from confsec.media.stats import MediaStats, RtcpStats
from confsec.media.tone import detect_tones, pcmu_decode

__all__ = [
    "HELD_LIMIT",
    "PCMU_PT",
    "PCMU_RATE",
    "RTCP_SAMPLES",
    "STRAY_SAMPLES",
    "MediaStats",
    "Reception",
    "RtcpStats",
]

Addr = tuple[Any, ...]

_SSRC_AT_8 = struct.Struct("!I")
T = TypeVar("T")
_WHOLE_TRIES = 10_000
"""How often `Reception.whole()` waits for a datagram to be counted (microseconds each)."""
SRTCP_TAG_LEN = 10
"""Octets of SRTCP's HMAC-SHA1 tag, for AES_CM_128_HMAC_SHA1_32 too (RFC 4568 6.2.1)."""
RTCP_SAMPLES = 8
RTCP_OPENED = 64
"""Refused RTCP datagrams a leg keeps, with their arrival time, as evidence."""
STRAY_SAMPLES = 8
"""Strays (datagrams set aside as not the target's) a leg keeps as evidence: source, length,
first octets."""
_REFUSAL_COUNTERS = ("auth_failed", "replayed", "malformed", "rtcp", "rtcp_plain", "rtcp_malformed")
"""What judging a stray may have counted, restored when it is set aside (`_rtcp_counts` too)."""
STRAY_RECENT = 64
SOURCES_LIMIT = 64
"""Distinct sources a leg learns as the target's, or counts as strays; past it, what comes from
a new source is judged as the target's (the strict side: it can fail a check, never pass one)."""
HELD_LIMIT = 500
"""Datagrams a leg holds while it waits for the key of an offer it made: ten seconds of 50 pps."""
PCMU_PT = 0
"""The static RTP payload type of PCMU (RFC 3551): the only payload the tone check decodes."""
PCMU_RATE = 8000


class _Audio:
    """The last `limit` PCMU samples of one SSRC, as a deque of payloads."""

    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.limit = limit

    def add(self, payload: bytes) -> None:
        self.chunks.append(payload)
        self.size += len(payload)
        while self.size - len(self.chunks[0]) >= self.limit:
            self.size -= len(self.chunks.popleft())

    def last(self, samples: int) -> bytes:
        data = b"".join(self.chunks)
        return data[-samples:] if samples < len(data) else data


class Reception:
    """Counters and audio of what was received; `_classify()` judges one datagram.

    Memory is bounded: the last `audio_seconds` of PCMU per SSRC, at most `ssrc_limit` SSRCs,
    at most `held_limit` datagrams held for a key.
    """

    def __init__(self, *, audio_seconds: float, ssrc_limit: int, held_limit: int) -> None:
        self._receiver: SrtpReceiver | None = None
        self._previous: SrtpReceiver | None = None
        self.first_authenticated_at: float | None = None
        """Arrival time (the leg's loop time) of the first packet that authenticated under the
        current receiver (not the previous one kept during a rekey): when a new key was first
        seen in use."""
        self._ssrc_limit = ssrc_limit
        self._audio: dict[int, _Audio] = {}
        self._audio_limit = int(audio_seconds * PCMU_RATE)
        self._ssrcs: set[int] = set()
        self.authenticated = 0
        self.auth_failed = 0
        self.replayed = 0
        self.malformed = 0
        self.plain = 0
        self.rtcp = 0
        self._rtcp_counts = {OK: 0, AUTH_FAILED: 0, REPLAYED: 0}
        self.srtcp_unencrypted = 0
        self.rtcp_plain = 0
        self.rtcp_malformed = 0
        self.allow_unencrypted_srtcp = False
        """UNENCRYPTED_SRTCP was negotiated for what this leg receives (RFC 4568 6.3.2)."""
        self.rtcp_refused_samples: list[tuple[float | None, bytes]] = []
        """The first `RTCP_SAMPLES` RTCP datagrams refused, with arrival time: evidence."""
        self.rtcp_opened: deque[tuple[float | None, bytes]] = deque(maxlen=RTCP_OPENED)
        """The last SRTCP compounds accepted, decrypted, with arrival time: what a check reads
        to see whose reports the target passed on under this leg's key."""
        self._held: list[tuple[bytes, Addr | None]] | None = None
        """Datagrams awaiting their key (`expect_key()`), with their source, judged when it
        arrives."""
        self._attributing = False
        self._sources: set[Addr] = set()
        """The target's sources: the addresses it announced (`attribute()`), and every source
        whose packets authenticated under this leg's key (only a key holder can do that)."""
        self._home: str | None = None
        """The target's host when it is not this leg's own: all that comes from it is its."""
        self.strays = 0
        """Datagrams from elsewhere that did not authenticate: set aside, never judged."""
        self.stray_sources: dict[Addr, int] = {}
        self.stray_samples: list[tuple[float | None, Addr, int, bytes]] = []
        """The first `STRAY_SAMPLES` strays: arrival time, source, length, first 12 octets."""
        self.strays_recent: deque[tuple[float | None, Addr, bytes]] = deque(maxlen=STRAY_RECENT)
        """The last strays whole: where a check looks for its own probe passed on from an
        address the target never announced."""
        self._held_limit = held_limit
        self._counting = 0
        """A seqlock's count: odd while a datagram (or a new receiver's held ones) is being
        counted. The receive path runs on the loop's thread; `whole()` reads from any."""

    # -- the receiver ---------------------------------------------------------------------------

    def expect_key(self) -> None:
        """An SRTP offer went out for this leg: hold what arrives until its key is known.

        The answerer may send media as soon as it has answered (RFC 3264 section 5.1), and with
        SDES the key travels in that answer, so the first packets can be here before the answer
        is read, the more so on a loaded machine. Judging them then would count a conformant
        target's packets as "not authenticating"; holding them judges every packet under the
        key it was sent with, once `set_receiver()` brings it.
        """
        if self._receiver is None and self._held is None:
            self._held = []

    def _use_receiver(
        self, receiver: SrtpReceiver | None, keep_previous: bool, now: float | None
    ) -> bool:
        """Judge from now on with `receiver` (see `MediaLeg.set_receiver()`); what was held is
        judged now, in arrival order, as arrived at `now`. True if anything was held."""
        self._counting += 1
        try:
            return self._judge_held(receiver, keep_previous, now)
        finally:
            self._counting += 1

    def _judge_held(
        self, receiver: SrtpReceiver | None, keep_previous: bool, now: float | None
    ) -> bool:
        self._previous = self._receiver if keep_previous else None
        self._receiver = receiver
        self.first_authenticated_at = None
        held, self._held = self._held, None
        if not held:
            return False
        for data, addr in held:
            if self._attributed(data, now, addr):
                self.received -= 1  # counted when it came: a stray is not received
                self._unrecord(data)
        return True

    def _unrecord(self, data: bytes) -> None:
        """A held datagram turned out a stray: whatever history was kept of it forgets it
        (`MediaLeg` keeps one)."""

    def attribute(self, *sources: Addr, own_host: str | None = None) -> None:
        """Judge only what the target sends: from now on a datagram counts only if it comes
        from one of `sources` (the addresses the target announced in SDP), from the target's
        host when that is not `own_host` (this leg's), or authenticates under this leg's key.

        On a shared host, other processes' media reaches a port that was theirs a moment ago:
        a mixer still reporting to a participant that just closed its socket, a client still
        sending to a crashed server. Judged as the target's, one stray SRTCP packet failed a
        conformant target ("3 of 3 RTCP packets refused") where it had sent none. What is set
        aside is counted in `strays`, with samples, and never in `received`. A host that is
        not an IP address cannot be compared with a source: then everything is judged.
        """
        for addr in sources:
            host = str(addr[0])
            try:
                ipaddress.ip_address(host.split("%")[0])
            except ValueError:
                self._attributing = False
                self._sources.clear()
                return
            if len(self._sources) < SOURCES_LIMIT:
                self._sources.add(tuple(addr[:2]))
            if own_host is not None and host != own_host:
                self._home = host
        self._attributing = bool(self._sources)

    def from_target(self, addr: Addr) -> bool:
        """Whether `attribute()` takes a datagram from `addr` as the target's."""
        return (
            not self._attributing
            or addr in self._sources
            or tuple(addr[:2]) in self._sources
            or addr[0] == self._home
        )

    def whole(self, read: Callable[[], T]) -> T:
        """`read()` of the counters with no datagram half counted: the steps' thread reads
        while the loop's thread receives, and a snapshot taken half-way through a datagram
        showed it received and judged nowhere ("1 did not authenticate (none)" against a
        compliant mixer). The receive path pays two integer increments, no lock."""
        for _ in range(_WHOLE_TRIES):
            before = self._counting
            if not before & 1:
                value = read()
                if self._counting == before:
                    return value
            time.sleep(0)  # the loop's thread is inside a datagram: give it the GIL
        return read()  # only a hook inside this leg's own receive path gets here

    # -- the judgement --------------------------------------------------------------------------

    def _attributed(self, data: bytes, now: float | None, addr: Addr | None) -> bool:
        """`_classify` behind `attribute()`'s gate; True if it was set aside as a stray (the
        caller counted it as received). `MediaLeg.datagram_received` inlines the gate."""
        if addr is not None and self._receiver is not None and not self.from_target(addr):
            return self._stranger(data, now, addr)
        self._classify(data, now, addr)
        return False

    def _stranger(self, data: bytes, now: float | None, addr: Addr) -> bool:
        """A datagram from a source the target did not announce: the target's if it
        authenticates (the source is learned), else a stray, its judgement undone."""
        if addr[:2] in self._sources:  # an IPv6 source has four parts, an announced one two
            self._sources.add(addr)
            self._classify(data, now)
            return False
        ok = self.authenticated + self._rtcp_counts[OK] + self.srtcp_unencrypted
        rtp = len(data) >= 12 and not 192 <= data[1] <= 223
        ssrc = _SSRC_AT_8.unpack_from(data, 8)[0] if rtp else None
        new_ssrc = ssrc is not None and ssrc not in self._ssrcs
        saved = [getattr(self, name) for name in _REFUSAL_COUNTERS]
        rtcp_counts, samples = dict(self._rtcp_counts), len(self.rtcp_refused_samples)
        self._classify(data, now)
        if self.authenticated + self._rtcp_counts[OK] + self.srtcp_unencrypted > ok:
            if len(self._sources) < SOURCES_LIMIT:
                self._sources.add(addr)
            return False
        if len(self.stray_sources) >= SOURCES_LIMIT and addr not in self.stray_sources:
            return False  # a flood of sources: judged as the target's (see SOURCES_LIMIT)
        for name, value in zip(_REFUSAL_COUNTERS, saved, strict=True):
            setattr(self, name, value)
        self._rtcp_counts = rtcp_counts
        del self.rtcp_refused_samples[samples:]
        if new_ssrc:
            self._ssrcs.discard(ssrc)
        self.strays += 1
        self.strays_recent.append((now, addr, data))
        self.stray_sources[addr] = self.stray_sources.get(addr, 0) + 1
        if len(self.stray_samples) < STRAY_SAMPLES:
            self.stray_samples.append((now, addr, len(data), data[:12]))
        return True

    def _classify(self, data: bytes, now: float | None, addr: Addr | None = None) -> None:
        if self._held is not None:  # only ever set while there is no receiver
            if len(self._held) < self._held_limit:
                self._held.append((data, addr))
                return
            # A key that never comes: judge what was held, and all that follows, without one.
            held, self._held = self._held, None
            for old, source in held:
                if self._attributed(old, now, source):
                    self.received -= 1
                    self._unrecord(old)
        if len(data) < 12 or data[0] >> 6 != 2:
            self.malformed += 1
            return
        if 192 <= data[1] <= 223:  # RTCP on a muxed port (RFC 5761)
            self._judge_rtcp(data, now)
            return
        ssrc = _SSRC_AT_8.unpack_from(data, 8)[0]
        if ssrc not in self._ssrcs and len(self._ssrcs) < self._ssrc_limit:
            self._ssrcs.add(ssrc)
        rx = self._receiver
        if rx is not None:
            plain = rx.try_unprotect(data)
            if plain is None and self._previous is not None:
                plain = self._previous.try_unprotect(data)
                if plain is None:
                    rx = self._previous
            elif plain is not None and self.first_authenticated_at is None:
                self.first_authenticated_at = now
            if plain is None:
                status = rx.last_status
                if status == AUTH_FAILED:
                    self.auth_failed += 1
                elif status == REPLAYED:
                    self.replayed += 1
                else:
                    self.malformed += 1
                return
            self.authenticated += 1
        else:
            plain = data
            self.plain += 1
        if plain[1] & 0x7F != PCMU_PT:
            return
        if plain[0] == 0x80:  # no padding, extension or CSRC: the common case
            payload = plain[12:]
        else:
            try:
                start, end = rtp_payload_bounds(plain)
            except RtpParseError:
                return  # counted as received/plain; the payload is unusable for audio
            payload = plain[start:end]
        audio = self._audio.get(ssrc)
        if audio is None:
            if len(self._audio) >= self._ssrc_limit:
                return
            audio = self._audio[ssrc] = _Audio(self._audio_limit)
        audio.add(payload)

    def _judge_rtcp(self, data: bytes, now: float | None) -> None:
        """SRTCP must authenticate under the receiver's key, with its own replay window, and
        be encrypted unless agreed otherwise (RFC 3711 3.4); plain RTCP is refused."""
        self.rtcp += 1
        rx = self._receiver
        status = None
        opened = None
        if rx is not None:
            opened = rx.try_unprotect_rtcp(data)
            if opened is None and self._previous is not None:
                opened = self._previous.try_unprotect_rtcp(data)
                if opened is not None:
                    rx = self._previous
            status = rx.last_status
        if status == OK and rx is not None and opened is not None:
            self.rtcp_opened.append((now, opened))
            # The E flag leads the word after the encrypted part: before the tag with AES-CM
            # (80 bits with either HMAC suite, RFC 4568 6.2.1), after it with AES-GCM (RFC 7714
            # section 9).
            at = len(data) - 4 - (0 if rx.profile.aead else SRTCP_TAG_LEN)
            if data[at] & 0x80:
                self._rtcp_counts[OK] += 1
                return
            self.srtcp_unencrypted += 1
            if self.allow_unencrypted_srtcp:
                return
        elif status in (AUTH_FAILED, REPLAYED) and not is_plain_rtcp(data):
            self._rtcp_counts[status] += 1
        elif is_plain_rtcp(data):
            self.rtcp_plain += 1
        else:
            self.rtcp_malformed += 1
        if len(self.rtcp_refused_samples) < RTCP_SAMPLES:
            self.rtcp_refused_samples.append((now, data))

    def rtcp_stats(self) -> RtcpStats:
        return RtcpStats(
            self.rtcp,
            self._rtcp_counts[OK],
            self.srtcp_unencrypted,
            self.rtcp_plain,
            self._rtcp_counts[AUTH_FAILED],
            self._rtcp_counts[REPLAYED],
            self.rtcp_malformed,
            self.allow_unencrypted_srtcp,
        )

    # -- what is heard --------------------------------------------------------------------------

    def audio(self, ssrc: int, seconds: float = 1.0) -> np.ndarray:
        """The last `seconds` of PCMU decoded from one SSRC (int16; empty if none)."""
        buf = self._audio.get(ssrc)
        if buf is None:
            return np.zeros(0, dtype=np.int16)
        return pcmu_decode(buf.last(int(seconds * PCMU_RATE)))

    def tone_ratios(
        self, candidates: Sequence[float], seconds: float = 1.0, ssrc: int | None = None
    ) -> dict[float, float]:
        """For each candidate, its power share in the last `seconds` of received PCMU.

        Each SSRC is analysed on its own (a forwarder sends one per talker, a mixer one for
        all) and the largest share per candidate is returned; see `tone.detect_tones()`.
        """
        result = dict.fromkeys((float(f) for f in candidates), 0.0)
        ssrcs = [ssrc] if ssrc is not None else list(self._audio)
        for s in ssrcs:
            pcm = self.audio(s, seconds)
            if pcm.size < 2:
                continue
            for f, r in detect_tones(pcm, list(result)).items():
                if r > result[f]:
                    result[f] = r
        return result

    def reset_audio(self) -> None:
        """Start a fresh listening window: forget the audio received so far.

        `heard_tones()` looks at the last seconds of what arrived; a check about one window
        (a replay must not be heard *now*) would otherwise hear what came before it.
        """
        self._audio.clear()

    def heard_tones(
        self, candidates: Sequence[float], min_ratio: float = 0.005, seconds: float = 1.0
    ) -> set[float]:
        """The candidate tones heard in the last `seconds` received: "440 and 660, not 880".

        A tone is heard when its share of the power is at least `min_ratio` (see
        `tone.tones_present()`); `tone_ratios()` gives the numbers behind the answer.
        """
        return {f for f, r in self.tone_ratios(candidates, seconds).items() if r >= min_ratio}
