"""How the reference focus notices a participant that vanished without a BYE (R6).

A client that crashes, loses its network or is killed sends no BYE. Until the focus notices, the
vanished participant keeps its leg: the mixer goes on sending it the conference, and nobody is
rekeyed, so keys the vanished client held (and may have leaked) keep protecting the others'
media. A focus cannot wait for a BYE that will never come; it needs a timeout of its own.

The reference takes a participant as gone when two things hold together:

- its signalling is gone: the TLS connection its dialog runs on (the focus sends re-INVITEs and
  NOTIFYs over the participant's own connection, see docs/DESIGN.md) is closed, so the focus
  can no longer reach it at all; and
- its media stopped: no packet that authenticates has come from any of its streams for
  `media_timeout_s`, the media inactivity timer of RFC 3550 6.3.5 (a participant that sends
  neither RTP nor RTCP for a while has timed out), kept by the mixer (`Mixer.idle_s`).

Either alone is not enough: a participant that is muted and sends nothing keeps its signalling
up, and one whose TLS connection dropped but whose media flows may be reconnecting. Then its leg
goes exactly as with a BYE (`Focus.lost`): the others are rekeyed, its subscriptions end, the
mixer stops sending to it. The capability statement declares the time this takes at worst
(`Capabilities.lost_participant_timeout_s`): the media timeout plus one check interval, rounded up.
The `no-vanish-detection` defect switch never starts the watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from confsec.reference.model import Conference, Leg

if TYPE_CHECKING:
    from confsec.net.flow import Flow

log = logging.getLogger(__name__)

MEDIA_TIMEOUT_S = 2.0
"""Seconds without authenticated media after which a leg whose signalling is gone is lost."""
CHECK_INTERVAL_S = 0.25
"""How often the legs are looked at."""
LOST_PARTICIPANT_TIMEOUT_S = 2.5
"""What the reference declares: a vanished participant is removed within this many seconds of
its media stopping and its TLS connection closing (`MEDIA_TIMEOUT_S` + `CHECK_INTERVAL_S`,
rounded up)."""


class MediaActivity(Protocol):
    """The mixer's media inactivity timer, as the focus reads it (an MRFP's report)."""

    def idle_s(self, conference_id: str, leg_id: str) -> float | None: ...


class LostParticipants:
    """Watches every leg of the focus's conferences for a participant that is gone."""

    def __init__(
        self,
        conferences: Mapping[str, Conference],
        media: MediaActivity,
        signalling_open: Callable[[Flow], bool],
        on_lost: Callable[[Conference, Leg], None],
        *,
        media_timeout_s: float = MEDIA_TIMEOUT_S,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.conferences = conferences
        self.media = media
        self.signalling_open = signalling_open
        self.on_lost = on_lost
        self.media_timeout_s = media_timeout_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.check()
            except Exception:  # one bad leg must not stop the watch for every conference
                log.exception("checking for lost participants failed")

    def check(self) -> list[Leg]:
        """Remove every leg whose signalling and media are both gone; returns them."""
        lost: list[tuple[Conference, Leg]] = []
        for conf in list(self.conferences.values()):
            for leg in list(conf.legs.values()):
                if self._gone(conf, leg):
                    lost.append((conf, leg))
        for conf, leg in lost:
            log.info("%s vanished from %s: no signalling, no media", leg.user, conf.conference_id)
            self.on_lost(conf, leg)
        return [leg for _, leg in lost]

    def _gone(self, conf: Conference, leg: Leg) -> bool:
        if leg.dialog is None or self.signalling_open(leg.dialog.flow):
            return False
        idle = self.media.idle_s(conf.conference_id, leg.leg_id)
        return idle is None or idle >= self.media_timeout_s
