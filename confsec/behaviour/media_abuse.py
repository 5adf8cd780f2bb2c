"""Robustness probes on the media path: truncated, replayed and forged SRTP.

One admitted participant (the *abuser*, carol in the features) sends what an attacker on the
path or a broken client would: SRTP datagrams too short to hold a header and a tag, genuine
packets of hers sent a second time, or her tone under her real key with a corrupted
authentication tag. The system under test must drop each one and keep mixing for the others
(R3: every packet that reaches the mix is SRTP that authenticates; RFC 3711 sections 3.3 and
3.3.2 for the tag and the replay list).

Each probe is judged on *windows* of media. A window is a second in which the participants send
their tones; each listener's tone detection starts afresh with it (`MediaLeg.reset_audio()`), so
"carol is not heard now" is not blurred by what was heard before. The first window is the
baseline: everyone sends honestly, and it proves that the conference carries media and that
each tone can be heard at all. The second is the probe. Without a working baseline the probe
proves nothing, and the checks say so (Inconclusive) instead of passing.

What the abuser sends is built by stand-ins for her SRTP sender (`Protector`s), which the pacing
job of her `MediaLeg` calls once per 20 ms packet: `Truncator`, `Forger`, `Recorder` and
`Replayer`. The pure parts (`truncations()`, `forge()`) and the checks need no network.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confsec.behaviour.participant import PAYLOAD_TYPES
from confsec.errors import Inconclusive, LocalProtocolError, NonConformance
from confsec.media.rtp import RTP_HEADER_LEN
from confsec.media.tone import ToneGenerator
from confsec.observed import Evidence

if TYPE_CHECKING:
    from confsec.behaviour.conference import ConferenceRun
    from confsec.behaviour.participant import Participant
    from confsec.media.endpoint import MediaLeg, Protector
    from confsec.media.srtp import SrtpSender

TRUNCATED = "truncated"
REPLAYED = "replayed"
FORGED = "forged"
ABUSES = (TRUNCATED, REPLAYED, FORGED)

PACKETS_PER_SECOND = 50  # 20 ms PCMU frames, as every participant sends
SETTLE_PACKETS = 20
"""Packets each listener must receive between two windows (0.4 s at 50 pps): what a mixer
still holds of the last window (the reference's jitter queue is 6 frames) plays out first."""
SETTLE_TIMEOUT_S = 2.0
RECORD_LIMIT = 500
"""At most this many of the abuser's packets are recorded for a replay (10 s)."""


# -- what the abuser sends ---------------------------------------------------------------------


def truncations(packet: bytes, tag_len: int) -> list[bytes]:
    """Three cuts of one SRTP packet, none with room for a header and a tag: shorter than the
    RTP header, the header alone, and the header with `tag_len - 1` octets after it."""
    if tag_len < 1 or len(packet) < RTP_HEADER_LEN + tag_len:
        raise LocalProtocolError(f"a {len(packet)}-octet packet with a {tag_len}-octet tag")
    return [packet[:5], packet[:RTP_HEADER_LEN], packet[: RTP_HEADER_LEN + tag_len - 1]]


def forge(packet: bytes) -> bytes:
    """The packet with one bit of its last octet flipped: the tag (HMAC or GCM) no longer
    matches, and everything else, including the ciphertext under the real key, is genuine."""
    if not packet:
        raise LocalProtocolError("cannot forge an empty packet")
    return packet[:-1] + bytes((packet[-1] ^ 0x01,))


class Truncator:
    """Protects with the real sender, and sends a truncated copy before each genuine packet,
    cycling through `truncations()`. Before, not after: a system that lets a truncated copy
    advance its replay state would then refuse the genuine packet, and the tone would be lost."""

    def __init__(self, sender: SrtpSender, leg: MediaLeg) -> None:
        self.sender = sender
        self.leg = leg
        self.sent = 0
        """Truncated datagrams sent."""

    def protect(self, rtp: bytes) -> bytes:
        packet = self.sender.protect(rtp)
        cuts = truncations(packet, self.sender.profile.auth_tag_len)
        self.leg.send_raw(cuts[self.sent % len(cuts)])
        self.sent += 1
        return packet


class Forger:
    """Protects with the real sender, then corrupts the tag (`forge()`)."""

    def __init__(self, sender: SrtpSender) -> None:
        self.sender = sender
        self.sent = 0

    def protect(self, rtp: bytes) -> bytes:
        self.sent += 1
        return forge(self.sender.protect(rtp))


class Recorder:
    """Protects with the real sender and keeps the exact SRTP bytes, for a later replay."""

    def __init__(self, sender: SrtpSender, limit: int = RECORD_LIMIT) -> None:
        self.sender = sender
        self.limit = limit
        self.packets: list[bytes] = []

    def protect(self, rtp: bytes) -> bytes:
        packet = self.sender.protect(rtp)
        if len(self.packets) < self.limit:
            self.packets.append(packet)
        return packet


class Replayer:
    """Sends recorded packets again, one per tick of the pacing job: the fresh RTP packet the
    job built is ignored, so nothing new is protected and no index is used twice by us."""

    def __init__(self, packets: list[bytes]) -> None:
        if not packets:
            raise LocalProtocolError("nothing was recorded to replay")
        self.packets = packets
        self.sent = 0

    def protect(self, rtp: bytes) -> bytes:
        packet = self.packets[self.sent % len(self.packets)]
        self.sent += 1
        return packet


# -- observations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heard:
    """What one participant received in one window."""

    received: int
    """Datagrams that arrived on its audio leg during the window."""
    authenticated: int
    """Of those, SRTP packets that authenticated under its key."""
    tones: frozenset[str]
    """Whose tones it heard in the window (participant names)."""
    rekeys: tuple[int, int]
    """How many key sets it had received at the window's start and end (R6 re-INVITEs)."""


@dataclass(frozen=True)
class Window:
    """One window of media: who sent honestly, what the abuser sent, what everyone heard."""

    seconds: float
    senders: frozenset[str]
    """Participants that sent their tone honestly."""
    heard: dict[str, Heard]
    abuser: str | None = None
    abuse: str | None = None
    """One of `ABUSES`, or None in a baseline."""
    abusive: int = 0
    """How many abusive datagrams the abuser sent."""


class MediaAbuse:
    """One scenario's windows; the fixture `media_abuse` of steps/robustness_media.py."""

    def __init__(self, conf: ConferenceRun) -> None:
        self.conf = conf
        self.baseline: Window | None = None
        self.probe: Window | None = None
        self.recorded: dict[str, list[bytes]] = {}

    def exchange(self, seconds: float, *, record: str | None = None) -> Window:
        """The baseline: everyone sends its tone; `record` names one whose SRTP is kept."""
        self.baseline = self._window(seconds, None, record)
        return self.baseline

    def abuse(self, seconds: float, abuser: str, abuse: str) -> Window:
        """The probe: the others send their tones, the abuser sends `abuse` (with her tone
        alongside for TRUNCATED, instead of it for REPLAYED and FORGED)."""
        if abuse not in ABUSES:
            raise LocalProtocolError(f"unknown media abuse {abuse!r}")
        self.conf.participant(abuser)
        if abuse == REPLAYED and not self.recorded.get(abuser):
            raise Inconclusive(f"none of {abuser}'s SRTP packets were recorded to replay")
        self.probe = self._window(seconds, (abuser, abuse), None)
        return self.probe

    def _window(self, seconds: float, abuse: tuple[str, str] | None, record: str | None) -> Window:
        timeout = seconds + self.conf.target.timeouts.media + SETTLE_TIMEOUT_S + 5
        self.conf.count_window("media", seconds)
        return self.conf.runtime.run(
            self._run_window(seconds, abuse, record), timeout, "media window"
        )

    async def _run_window(
        self, seconds: float, abuse: tuple[str, str] | None, record: str | None
    ) -> Window:
        people = [p for p in self.conf.participants.values() if _audio(p) is not None]
        if not people:
            raise Inconclusive("no participant has an audio leg to send or listen on")
        legs = {p.name: _audio_leg(p) for p in people}
        if self.baseline is not None:  # what the system holds of the last window plays out
            await _wait_all(
                {n: leg.received + SETTLE_PACKETS for n, leg in legs.items()},
                legs,
                SETTLE_TIMEOUT_S,
            )
        before = {
            p.name: (legs[p.name].received, legs[p.name].authenticated, len(p.rekeys))
            for p in people
        }
        for leg in legs.values():
            leg.reset_audio()
        abuser, kind = abuse if abuse is not None else (None, None)
        stand_in: Truncator | Forger | Replayer | None = None
        senders: set[str] = set()
        try:
            for p in people:
                if p.name == abuser:
                    stand_in = self._start_abuse(p, kind)
                elif p.name == record:
                    recorder = Recorder(_sender(p))
                    self.recorded[p.name] = recorder.packets
                    _start_tone(p, recorder)
                    senders.add(p.name)
                else:
                    p.start_media()
                    senders.add(p.name)
            want = max(1, int(seconds * PACKETS_PER_SECOND))
            await _wait_all(
                {n: before[n][0] + want for n in legs},
                legs,
                seconds + self.conf.target.timeouts.media,
            )
        finally:
            for p in people:
                p.stop_media()
        tones = {f: n for n, f in people[0].all_tones.items()}
        heard = {
            p.name: Heard(
                received=legs[p.name].received - before[p.name][0],
                authenticated=legs[p.name].authenticated - before[p.name][1],
                tones=frozenset(
                    tones[f] for f in legs[p.name].heard_tones(list(tones), seconds=seconds + 1)
                ),
                rekeys=(before[p.name][2], len(p.rekeys)),
            )
            for p in people
        }
        return Window(
            seconds,
            frozenset(senders),
            heard,
            abuser,
            kind,
            stand_in.sent if stand_in is not None else 0,
        )

    def _start_abuse(self, p: Participant, kind: str | None) -> Truncator | Forger | Replayer:
        if kind == TRUNCATED:
            truncator = Truncator(_sender(p), _audio_leg(p))
            _start_tone(p, truncator)
            return truncator
        if kind == FORGED:
            forger = Forger(_sender(p))
            _start_tone(p, forger)
            return forger
        replayer = Replayer(self.recorded[p.name])
        _audio_leg(p).start_sending(
            replayer,
            ssrc=p.ssrcs["audio"],
            payload_type=PAYLOAD_TYPES["audio"],
            count=len(replayer.packets),
        )
        return replayer


def _audio(p: Participant) -> MediaLeg | None:
    leg = p.legs.get("audio")
    return leg if leg is not None and leg.remote is not None else None


def _audio_leg(p: Participant) -> MediaLeg:
    leg = _audio(p)
    if leg is None:
        raise Inconclusive(f"{p.name} has no audio leg with a remote address")
    return leg


def _sender(p: Participant) -> SrtpSender:
    sender = _audio_leg(p).sender
    if sender is None:
        raise Inconclusive(f"{p.name} has no SRTP sender: the probe needs a protected leg")
    return sender


def _start_tone(p: Participant, protector: Protector) -> None:
    """Send p's tone on its audio leg, each packet protected by `protector`."""
    _audio_leg(p).start_sending(
        protector,
        ssrc=p.ssrcs["audio"],
        payload_type=PAYLOAD_TYPES["audio"],
        frames=ToneGenerator(p.tone_hz).frames(),
    )


async def _wait_all(targets: dict[str, int], legs: dict[str, MediaLeg], timeout: float) -> None:
    """Until every leg has received its target count, or `timeout`: a leg that stays silent is
    an observation for the checks, not an error here."""
    await asyncio.gather(
        *(legs[n].wait_for_packets(count, timeout) for n, count in targets.items()),
        return_exceptions=True,
    )


def measurements(window: Window) -> dict[str, float]:
    """The window's numbers for the report (`measured numbers` of the scenario's evidence)."""
    out: dict[str, float] = {"seconds": window.seconds, "abusive_packets": window.abusive}
    for name, h in sorted(window.heard.items()):
        out[f"{name}.received"] = h.received
        out[f"{name}.authenticated"] = h.authenticated
        out[f"{name}.tones_heard"] = len(h.tones)
    return out


# -- checks --------------------------------------------------------------------------------------


def _windows(baseline: Window | None, probe: Window | None, abuse: str) -> tuple[Window, Window]:
    if baseline is None:
        raise Inconclusive("no baseline window was run: nothing shows the media worked before")
    if probe is None or probe.abuse != abuse or probe.abuser is None:
        raise Inconclusive(f"no {abuse} SRTP was sent (an earlier step did not get that far)")
    if probe.abusive == 0:
        raise Inconclusive(f"{probe.abuser} sent no {abuse} packets in the probe window")
    return baseline, probe


def _heard(window: Window, name: str, when: str) -> Heard:
    try:
        return window.heard[name]
    except KeyError:
        raise Inconclusive(f"{name} was not listening {when}") from None


def everyone_heard(window: Window) -> None:
    """The baseline worked: each participant heard every other one's tone.

    Otherwise no probe can be judged on this conference, hence Inconclusive, never a fail.
    """
    problems = []
    for name, h in window.heard.items():
        missing = sorted(window.senders - {name} - h.tones)
        if missing:
            problems.append(
                f"{name} did not hear {', '.join(missing)} ({h.received} packets arrived)"
            )
    if problems:
        raise Inconclusive(
            "before the probe the conference did not carry every tone: " + "; ".join(problems)
        )


def still_hears(
    baseline: Window | None, probe: Window | None, listener: str, speakers: list[str]
) -> Evidence:
    """After the abuser's truncated packets the listener still hears every speaker."""
    base, now = _windows(baseline, probe, TRUNCATED)
    was = _heard(base, listener, "before the probe")
    missing_before = [s for s in speakers if s not in was.tones]
    if missing_before:
        raise Inconclusive(
            f"{listener} did not hear {', '.join(missing_before)} before the probe either: "
            "the conference carried no media to judge by"
        )
    h = _heard(now, listener, "during the probe")
    missing = [s for s in speakers if s not in h.tones]
    if missing:
        raise NonConformance(
            f"after {now.abuser} sent {now.abusive} truncated SRTP packets, {listener} no "
            f"longer hears {', '.join(missing)} ({h.received} packets reached {listener} in that "
            f"window, {h.authenticated} authenticated): one participant's malformed packets "
            "disrupted the conference for the others"
        )
    return Evidence.of(
        f"{listener} heard {', '.join(speakers)} before the probe",
        abusive_packets_sent=now.abusive,
        packets_received=h.received,
        speakers_heard=len(speakers),
    )


_FINDING = {
    REPLAYED: (
        "{listener} hears {speaker}'s tone while {speaker} only replayed {n} SRTP packets "
        "already received: they were mixed again (no replay protection, RFC 3711 3.3.2)"
    ),
    FORGED: (
        "{listener} hears {speaker}'s tone from {n} SRTP packets whose authentication tag was "
        "corrupted: packets that fail authentication were mixed (RFC 3711 3.3)"
    ),
}


def does_not_hear(
    baseline: Window | None, probe: Window | None, listener: str, speaker: str, abuse: str
) -> Evidence:
    """The speaker's replayed or forged packets never reach the listener's mix."""
    if abuse not in _FINDING:
        raise LocalProtocolError(f"no finding for {abuse!r} packets")
    base, now = _windows(baseline, probe, abuse)
    if now.abuser != speaker:
        raise Inconclusive(f"{speaker} sent no {abuse} packets; {now.abuser} did")
    if speaker not in _heard(base, listener, "before the probe").tones:
        raise Inconclusive(
            f"{listener} did not hear {speaker}'s genuine tone before the probe either: not "
            "hearing it now would prove nothing"
        )
    first = _heard(base, speaker, "before the probe").rekeys[0]
    last = _heard(now, speaker, "during the probe").rekeys[1]
    if first != last:
        raise Inconclusive(
            f"{speaker} got new keys during the probe: the {abuse} packets may have been "
            "dropped for an old key, not for what they are"
        )
    h = _heard(now, listener, "during the probe")
    others = sorted(now.senders - {listener, speaker})
    if not others or not any(o in h.tones for o in others):
        raise Inconclusive(
            f"{listener} heard nobody in the probe window ({h.received} packets arrived, "
            f"listening for {', '.join(others) or 'no one'}): the window shows nothing"
        )
    if speaker in h.tones:
        raise NonConformance(
            _FINDING[abuse].format(listener=listener, speaker=speaker, n=now.abusive)
        )
    if now.abusive <= 0:
        raise Inconclusive(f"{speaker} sent no {abuse} packets in the probe window")
    return Evidence.of(
        f"{listener} heard {speaker}'s genuine tone before the probe",
        f"{listener} heard {', '.join(o for o in others if o in h.tones)} during the probe",
        **{f"{abuse}_packets_sent": now.abusive},
        packets_received=h.received,
    )
