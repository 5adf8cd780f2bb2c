"""The key-stream ledger: who holds which SRTP key, and which key streams overlap.

Requirement R4 (different media streams use different key streams) is a statement about the
whole run, not one leg: a focus that hands the same SDES key to two participants, or reuses the
offerer's key in the answer, or keeps a key across a rekey, is only visible when every SRTP
session confsec creates is written down in one place. `confsec.media.srtp` is the one factory
of SRTP sessions and registers each with this ledger; this ledger is the only record of keys
in confsec (house rule 5).

A key stream is determined by (master key, master salt, SSRC) and the packet index, apart for
SRTP and SRTCP (RFC 3711 4.3.2 derives each its own session keys, and SRTCP counts its own
31-bit index), so the ledger keeps the two channels apart and judges each on its own; two
*different* streams on the same triple make a two-time pad. "Different" needs care, because
the same stream legitimately appears several times: the sender and each of its receivers, and
a mixer or group key fanning one protected stream out unchanged to many participants. So the
ledger also keeps a short fingerprint of some protected packets per stream: two stream ids on
one triple are one stream when every index both saw carried the very same packet, and there was
at least one such index.

Secrets never leave through `repr`, `str`, `findings()` or `entries()`; they are reachable only
through `keys_for_evidence()`, which the evidence bundle (access controlled) calls.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from confsec.errors import LocalProtocolError

__all__ = [
    "FINDING_KINDS",
    "KeyStreamLedger",
    "KeyStreamReuse",
    "LedgerRow",
    "StreamId",
    "key_fingerprint",
    "packet_fingerprint",
]

Direction = Literal["send", "recv"]

#: Finding kinds, strongest first.
FINDING_KINDS = ("keystream-reuse", "key-shared-different-ssrc", "master-key-reused")

# How many packet indexes the ledger keeps per (stream, SSRC): the first FIRST_INDEXES seen,
# then every index that is a multiple of SAMPLE_STRIDE, up to SAMPLED_INDEXES more. The sample
# lets a receiver that joined late still overlap a sender that started early.
FIRST_INDEXES = 64
SAMPLE_STRIDE = 32
SAMPLED_INDEXES = 64


@dataclass(frozen=True, order=True)
class StreamId:
    """Names one SRTP stream from the point of view of the participant that holds the key."""

    owner: str
    """The participant (or reference component) holding this SRTP session."""
    peer: str
    """Whom it talks to (a participant, 'focus', 'mixer'...)."""
    media: str
    """'audio', 'video', 'application' (BFCP has no SRTP, but a common stream may)."""
    direction: Direction
    """'send' for an SRTP sender, 'recv' for a receiver."""
    label: str = ""
    """Anything else that tells two streams apart (an m-line index, 'common', 'rekey-2')."""

    def __str__(self) -> str:
        arrow = "->" if self.direction == "send" else "<-"
        extra = f" [{self.label}]" if self.label else ""
        return f"{self.owner} {arrow} {self.peer} {self.media}{extra}"


def key_fingerprint(key: bytes, salt: bytes) -> str:
    """First 16 hex digits of sha256(key || salt): names a key in reports without revealing it."""
    return hashlib.sha256(key + salt).hexdigest()[:16]


def packet_fingerprint(packet: bytes) -> bytes:
    """A short hash of one protected packet, enough to tell fan-out copies from distinct packets."""
    return hashlib.blake2b(packet, digest_size=8).digest()


@dataclass(frozen=True)
class KeyStreamReuse:
    """One finding of the ledger. Carries a key fingerprint, never the key or the salt."""

    kind: str
    """'keystream-reuse', 'key-shared-different-ssrc' or 'master-key-reused'."""
    streams: tuple[StreamId, ...]
    """The streams involved, sorted."""
    ssrc: int | None
    """The SSRC shared ('keystream-reuse'), else None."""
    key_fingerprint: str
    """`key_fingerprint(key, salt)` (for 'master-key-reused', that of the first pair)."""
    sentence: str
    """What a tester reads in the report."""
    confirmed: bool = False
    """For 'keystream-reuse': True when one index was seen carrying two different packets,
    i.e. the two-time pad was observed, not only made possible."""


@dataclass(frozen=True)
class LedgerRow:
    """One row of the report's key table: no secrets."""

    stream: StreamId
    suite: str
    key_fingerprint: str
    ssrcs: tuple[int, ...]
    packets_seen: int

    def as_dict(self) -> dict[str, object]:
        return {
            "stream": str(self.stream),
            "owner": self.stream.owner,
            "peer": self.stream.peer,
            "media": self.stream.media,
            "direction": self.stream.direction,
            "label": self.stream.label,
            "suite": self.suite,
            "key_fingerprint": self.key_fingerprint,
            "ssrcs": [f"0x{s:08x}" for s in self.ssrcs],
            "packets_seen": self.packets_seen,
        }


@dataclass(eq=False, repr=False)
class _Entry:
    """One registration: a stream id with one key. Secrets live here and nowhere else."""

    stream: StreamId
    suite: str
    key: bytes
    salt: bytes
    fingerprint: str
    ssrcs: dict[int, dict[int, bytes]] = field(default_factory=dict)
    sampled: dict[tuple[int, bool], int] = field(default_factory=dict)
    """Per (SSRC, SRTCP?), how many sampled (stride) indexes were stored after the first
    ones: SRTP and SRTCP are sampled apart, each on its own index."""
    conflicts: dict[tuple[int, str], set[int]] = field(default_factory=dict)
    """Per (SSRC, channel), indexes seen twice in this very entry with different packets."""
    rtcp: dict[int, dict[int, bytes]] = field(default_factory=dict)
    """Per SSRC, SRTCP packet fingerprints by SRTCP index: a key stream of its own."""
    observed: int = 0
    counter: Callable[[], int] | None = None

    def __repr__(self) -> str:
        return f"_Entry({self.stream!s}, {self.suite}, key {self.fingerprint})"

    @property
    def packets_seen(self) -> int:
        if self.counter is not None:
            try:
                return max(self.counter(), self.observed)
            except Exception:  # a dead session must not break the report
                return self.observed
        return self.observed


def _channel(rtcp: bool) -> str:
    return "SRTCP" if rtcp else "SRTP"


class KeyStreamLedger:
    """Records (master key, master salt, SSRC) per stream and reports key-stream reuse.

    Thread-safe: one ledger serves a whole run, and the reference deployment may run in
    another thread than the participants.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._current: dict[StreamId, _Entry] = {}

    def __repr__(self) -> str:
        with self._lock:
            return f"KeyStreamLedger({len(self._current)} streams, {len(self._entries)} keys)"

    __str__ = __repr__

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # -- recording ------------------------------------------------------------------------------

    def register(
        self,
        stream_id: StreamId,
        suite: str,
        key: bytes,
        salt: bytes,
        ssrc: int | None = None,
        *,
        packets: Callable[[], int] | None = None,
    ) -> None:
        """Record that `stream_id` uses this master key and salt from now on.

        Registering a stream id again with the same key and salt continues its record (a
        re-INVITE that keeps the crypto attribute); with a new key it starts a new record, and
        the old one stays for the findings. `packets`, if given, reports the session's own
        packet count for `entries()`.

        Give `ssrc` only for a stream that sends with a known SSRC. A receiver learns its SSRCs
        from the packets it authenticates (`bind_ssrc` / `observe`), so that a receiver that got
        nothing is not taken for a second stream on its sender's key.
        """
        key, salt = bytes(key), bytes(salt)
        with self._lock:
            cur = self._current.get(stream_id)
            if cur is None or cur.key != key or cur.salt != salt:
                cur = _Entry(stream_id, suite, key, salt, key_fingerprint(key, salt))
                self._entries.append(cur)
                self._current[stream_id] = cur
            if packets is not None:
                cur.counter = packets
            if ssrc is not None:
                cur.ssrcs.setdefault(ssrc, {})

    def bind_ssrc(self, stream_id: StreamId, ssrc: int) -> None:
        """Record the SSRC of a stream registered without one (learnt from its first packet)."""
        with self._lock:
            self._entry(stream_id).ssrcs.setdefault(ssrc, {})

    def observe(
        self,
        stream_id: StreamId,
        ssrc: int,
        index: int,
        packet_fingerprint: bytes,
        *,
        rtcp: bool = False,
    ) -> bool:
        """Record that the stream carried the packet with this fingerprint at this SRTP index.

        `index` is the 48-bit packet index (ROC << 16 | SEQ), or with `rtcp` the 31-bit SRTCP
        index. Returns whether the ledger still wants observations of this stream, so that a
        caller can stop calling (and hashing) once it has enough.
        """
        with self._lock:
            e = self._entry(stream_id)
            table = e.rtcp if rtcp else e.ssrcs
            if not rtcp:
                e.observed += 1
            seen = table.get(ssrc)
            if seen is None:
                seen = table[ssrc] = {}
            old = seen.get(index)
            if old is not None:
                if old != packet_fingerprint:
                    e.conflicts.setdefault((ssrc, _channel(rtcp)), set()).add(index)
                return True
            if len(seen) < FIRST_INDEXES:
                seen[index] = packet_fingerprint
                return True
            n = e.sampled.get((ssrc, rtcp), 0)
            if n >= SAMPLED_INDEXES:
                return False
            if index % SAMPLE_STRIDE == 0:
                seen[index] = packet_fingerprint
                e.sampled[(ssrc, rtcp)] = n + 1
            return True

    def _entry(self, stream_id: StreamId) -> _Entry:
        try:
            return self._current[stream_id]
        except KeyError:
            # A bug in the suite, not in the system under test.
            raise LocalProtocolError(f"stream {stream_id} was never registered") from None

    # -- reporting ------------------------------------------------------------------------------

    def findings(self) -> list[KeyStreamReuse]:
        """Every reuse the records show, strongest kind first."""
        with self._lock:
            entries = list(self._entries)
            snap = [
                (
                    e,
                    {
                        **{(s, "SRTP"): dict(ix) for s, ix in e.ssrcs.items()},
                        **{(s, "SRTCP"): dict(ix) for s, ix in e.rtcp.items()},
                    },
                )
                for e in entries
            ]
            conflicts = [(e, {s: set(v) for s, v in e.conflicts.items()}) for e in entries]
        out: list[KeyStreamReuse] = []
        out += self._reuse(snap, conflicts)
        out += self._different_ssrc(snap)
        out += self._master_key(entries)
        return out

    @staticmethod
    def _reuse(
        snap: list[tuple[_Entry, dict[tuple[int, str], dict[int, bytes]]]],
        conflicts: list[tuple[_Entry, dict[tuple[int, str], set[int]]]],
    ) -> list[KeyStreamReuse]:
        # Group the (entry, SSRC, channel) records by the key stream: key, salt, SSRC, channel.
        groups: dict[tuple[bytes, bytes, int, str], list[tuple[_Entry, dict[int, bytes]]]] = {}
        for e, per_ssrc in snap:
            for (ssrc, channel), idx in per_ssrc.items():
                groups.setdefault((e.key, e.salt, ssrc, channel), []).append((e, idx))
        self_conflicts = {(e.key, e.salt, *s): e for e, c in conflicts for s, ix in c.items() if ix}
        out = []
        for triple, members in groups.items():
            involved: set[StreamId] = set()
            confirmed = False
            if triple in self_conflicts:
                involved.add(self_conflicts[triple].stream)
                confirmed = True
            for i in range(len(members)):
                a, ia = members[i]
                for b, ib in members[i + 1 :]:
                    # Two records of one stream id on one triple: the stream went back to an
                    # old key after a rekey, which is reuse too.
                    common = ia.keys() & ib.keys()
                    differ = any(ia[k] != ib[k] for k in common)
                    if differ or not common:
                        involved.update((a.stream, b.stream))
                        confirmed = confirmed or differ
            if not involved:
                continue
            key, salt, ssrc, channel = triple
            streams = tuple(sorted(involved))
            fp = key_fingerprint(key, salt)
            names = ", ".join(str(s) for s in streams)
            if channel != "SRTP":
                names = f"{names} ({channel})"
            if confirmed:
                how = "the same packet index carried different packets (two-time pad observed)"
            else:
                how = "no common packet shows them to be one fanned-out stream"
            if len(streams) == 1:
                sentence = (
                    f"Stream {names} used key {fp} with SSRC 0x{ssrc:08x} twice for "
                    f"different packets at the same index: {how}."
                )
            else:
                sentence = (
                    f"Streams {names} share master key and salt {fp} and SSRC 0x{ssrc:08x}: {how}."
                )
            out.append(KeyStreamReuse("keystream-reuse", streams, ssrc, fp, sentence, confirmed))
        return out

    @staticmethod
    def _different_ssrc(
        snap: list[tuple[_Entry, dict[tuple[int, str], dict[int, bytes]]]],
    ) -> list[KeyStreamReuse]:
        groups: dict[tuple[bytes, bytes], list[_Entry]] = {}
        for e, _ in snap:
            groups.setdefault((e.key, e.salt), []).append(e)
        out = []
        for (key, salt), members in groups.items():
            involved: set[StreamId] = set()
            ssrcs: set[int] = set()
            for i in range(len(members)):
                a = members[i]
                for b in members[i + 1 :]:
                    if not a.ssrcs or not b.ssrcs:
                        continue
                    if a.ssrcs.keys().isdisjoint(b.ssrcs.keys()):
                        involved.update((a.stream, b.stream))
                        ssrcs.update(a.ssrcs)
                        ssrcs.update(b.ssrcs)
            if not involved:
                continue
            fp = key_fingerprint(key, salt)
            streams = tuple(sorted(involved))
            names = ", ".join(str(s) for s in streams)
            listed = ", ".join(f"0x{s:08x}" for s in sorted(ssrcs))
            out.append(
                KeyStreamReuse(
                    "key-shared-different-ssrc",
                    streams,
                    None,
                    fp,
                    f"Streams {names} share master key and salt {fp} under different SSRCs "
                    f"({listed}): key streams differ only while the SSRCs stay distinct.",
                )
            )
        return out

    @staticmethod
    def _master_key(entries: list[_Entry]) -> list[KeyStreamReuse]:
        by_key: dict[bytes, list[_Entry]] = {}
        for e in entries:
            by_key.setdefault(e.key, []).append(e)
        out = []
        for members in by_key.values():
            salts = {e.salt for e in members}
            if len(salts) < 2:
                continue
            streams = tuple(sorted({e.stream for e in members}))
            fps = sorted({e.fingerprint for e in members})
            names = ", ".join(str(s) for s in streams)
            out.append(
                KeyStreamReuse(
                    "master-key-reused",
                    streams,
                    None,
                    fps[0],
                    f"Streams {names} use one master key with {len(salts)} different salts "
                    f"(key fingerprints {', '.join(fps)}): the key is not fresh.",
                )
            )
        return out

    def entries(self) -> list[LedgerRow]:
        """Rows for the report's key table, in registration order, without secrets."""
        with self._lock:
            entries = list(self._entries)
            rows = [(e, tuple(sorted(e.ssrcs))) for e in entries]
        return [
            LedgerRow(e.stream, e.suite, e.fingerprint, ssrcs, e.packets_seen) for e, ssrcs in rows
        ]

    def keys_for_evidence(self) -> list[dict[str, object]]:
        """The secrets, for the access-controlled evidence bundle only (Wireshark SRTP keys).

        Each row has the stream, suite, SSRCs, the key and salt as bytes, and `inline`, the
        SDES form base64(key || salt) that tools take.
        """
        with self._lock:
            entries = list(self._entries)
            return [
                {
                    "stream": str(e.stream),
                    "suite": e.suite,
                    "ssrcs": sorted(e.ssrcs),
                    "key_fingerprint": e.fingerprint,
                    "key": e.key,
                    "salt": e.salt,
                    "inline": base64.b64encode(e.key + e.salt).decode("ascii"),
                }
                for e in entries
            ]
