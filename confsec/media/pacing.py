"""What a media leg's pacing job is made of: the `Protector` each packet goes through, the job's
state (`SendJob`), and the frames sent when a caller gives none. `MediaLeg` runs the job on its
loop (`start_sending`, on absolute times t0 + k / pps)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from confsec.media.tone import PCMU_SILENCE

__all__ = ["Protector", "SendJob", "silence"]


class Protector(Protocol):
    """What the pacing job protects each packet with: an `SrtpSender`, or a stand-in of the
    robustness probes (confsec.behaviour.media_abuse) that forges, records or replays."""

    def protect(self, rtp: bytes) -> bytes: ...


class SendJob:
    """One RTP stream being paced: what `MediaLeg.start_sending` set up, and how far it is."""

    __slots__ = (
        "count",
        "done",
        "frames",
        "handle",
        "k",
        "marker_first",
        "pps",
        "pt",
        "sender",
        "seq0",
        "ssrc",
        "t0",
        "ts0",
        "ts_step",
    )


def silence(samples: int) -> Iterator[bytes]:
    """Endless frames of `samples` PCMU silence: what a leg sends without frames of its own."""
    frame = bytes((PCMU_SILENCE,)) * samples
    while True:
        yield frame
