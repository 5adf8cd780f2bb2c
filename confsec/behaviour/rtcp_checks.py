"""R3 on the control channel: what the suite makes of the RTCP a participant receives.

RTCP is media too: RFC 3711 makes authentication of SRTCP mandatory, and its SDES items carry
who is talking (often the user's SIP URI) in the clear when it is not protected. Judged on every
RTCP datagram the participants' legs received, on the RTP port (rtcp-mux) and on their own RTCP
ports (`confsec.media.rtcp_channel`):

* `srtcp_from_target`: every RTCP packet from the target is SRTCP that authenticates under the
  negotiated key, within its own replay window, and is encrypted unless UNENCRYPTED_SRTCP was
  negotiated. The control is that the target's SRTCP was observed at all: a target that sends
  no RTCP is not a fail, but the verdict says so (inconclusive: nothing judged).
* `plain_rtcp_not_relayed`: RTCP a participant sent in the clear, or as SRTCP under a key
  nobody holds, reaches no other participant and does not come back to it; the control is
  that the others received the target's media meanwhile.

Where SRTCP fails authentication, `diagnose` tries the one mistake worth naming: SRTCP
protected with the SRTP session keys (labels 0 to 2) instead of SRTCP's own.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confsec.behaviour.participant import COMMON, Key, Participant
from confsec.errors import Inconclusive, NonConformance
from confsec.media import rtcp
from confsec.media.defect_srtp import (
    SRTCP_LABELS,
    SRTP_LABELS,
    protect_srtcp,
    srtcp_opens_under,
)
from confsec.media.endpoint import MediaLeg
from confsec.media.reception import RtcpStats
from confsec.observed import Evidence

__all__ = [
    "RtcpProbe",
    "diagnose",
    "plain_rtcp_not_relayed",
    "probe",
    "rtcp_reached",
    "send_rtcp_probes",
    "srtcp_from_target",
]


def _reporting_legs(p: Participant) -> list[tuple[str, MediaLeg]]:
    return [
        (kind, leg)
        for kind, leg in p.legs.items()
        if kind != COMMON and leg.remote is not None and leg.rtcp_channel is not None
    ]


def _hex(data: bytes, n: int = 24) -> str:
    return data[:n].hex() + ("..." if len(data) > n else "")


def diagnose(data: bytes, key: Key | None, others: dict[str, Key] | None = None) -> str:
    """What a refused RTCP datagram is, in words, with its first octets (never a key).
    `others`: the keys other participants send with, to name SRTCP passed on unprocessed."""
    if rtcp.is_plain_rtcp(data):
        kinds = ",".join(str(p.packet_type) for p in rtcp.parse_compound(data))
        return f"plain RTCP (packet types {kinds}): {_hex(data)}"
    if key is not None and srtcp_opens_under(*key, data, SRTP_LABELS):
        return (
            "SRTCP protected with the SRTP session keys (labels 0-2) instead of SRTCP's own "
            f"(3-5): its keystream is SRTP's: {_hex(data)}"
        )
    for name, theirs in (others or {}).items():
        if srtcp_opens_under(*theirs, data, SRTCP_LABELS):
            return f"{name}'s own SRTCP, passed on as it came under {name}'s key: {_hex(data)}"
    return f"SRTCP that does not authenticate: {_hex(data)}"


def _grouped(diagnoses: Iterable[str]) -> str:
    """The kept samples' diagnoses, one per kind (the words before the octets), with how
    many samples were of that kind and the first one's octets."""
    kinds: dict[str, list[str]] = {}
    for text in diagnoses:
        kind, _, octets = text.rpartition(": ")
        kinds.setdefault(kind, []).append(octets)
    return "; ".join(f"{k} (x{len(v)}): {v[0]}" for k, v in kinds.items())


def _send_keys(participants: list[Participant]) -> dict[str, Key]:
    """Each participant's SDES sending key of its first stream (DTLS keys are not named)."""
    keys: dict[str, Key] = {}
    for p in participants:
        crypto = next(iter(p.send_crypto.values()), None)
        if crypto is not None and not crypto.is_null and crypto.salt:
            keys[p.name] = (crypto.suite, crypto.key, crypto.salt)
    return keys


def srtcp_from_target(participants: Iterable[Participant]) -> Evidence:
    """R3: every RTCP packet each participant received is SRTCP that authenticates."""
    problems: list[str] = []
    silent: list[str] = []
    judged = streams = reports = aside = 0
    strays: list[tuple[float | None, Any, int, bytes]] = []
    everyone = list(participants)
    senders = _send_keys(everyone)
    for p in everyone:
        for kind, leg in _reporting_legs(p):
            channel = leg.rtcp_channel
            assert channel is not None
            reports += channel.reports
            aside += channel.strays
            strays += channel.stray_samples()
            stats: RtcpStats = channel.received
            judged += stats.received
            if stats.refused:
                key = p.rekeys[-1].recv_keys.get(kind) if p.rekeys else None
                others = {n: k for n, k in senders.items() if n != p.name}
                why = _grouped(diagnose(d, key, others) for _, d in channel.refused_samples())
                problems.append(
                    f"{p.name}: {stats.refused} of {stats.received} RTCP packets on its {kind} "
                    f"stream were refused ({stats.refusals()}); samples: {why}"
                )
            if stats.accepted:
                streams += 1
            else:
                silent.append(f"{p.name} {kind}")
    if problems:
        raise NonConformance("; ".join(problems))
    if judged == 0:
        raise Inconclusive(
            f"the target sent no RTCP to {len(silent)} participant streams ({', '.join(silent)})"
            f" while they sent it {reports} SRTCP reports: a target need not send RTCP, but "
            f"its SRTCP could not be judged{_set_aside(aside, strays)}"
        )
    # A stream that got no RTCP while others did is not a fail (RTCP is the target's to send)
    # but it is counted, and named, beside the pass.
    without = f" (none on {', '.join(silent)})" if silent else ""
    return Evidence.of(
        f"the target's SRTCP was observed on {streams} streams{without}",
        srtcp_packets_judged=judged,
        streams_with_srtcp=streams,
        streams_without_rtcp=len(silent),
        participant_srtcp_reports_sent=reports,
        rtcp_packets_refused=0,
        datagrams_set_aside=aside,
    )


def _set_aside(n: int, samples: list[tuple[float | None, Any, int, bytes]]) -> str:
    """The `n` datagrams from addresses that are not the target's, in words, with the sources
    of the kept `samples` (empty if nothing)."""
    if not n:
        return ""
    sources = sorted({f"{a[0]}:{a[1]}" for _, a, _, _ in samples})
    return (
        f"; {n} datagrams from {', '.join(sources)}, which the target did not "
        "announce and which did not authenticate under the participants' keys, were set aside "
        "as not the target's"
    )


async def rtcp_reached(participants: Iterable[Participant], timeout: float) -> int:
    """Wait until every reporting leg has received RTCP from the target, or `timeout`; how
    many legs had none then. RFC 3550 6.2 lets a target report every 5 s (7.5 s randomised,
    the first after half that), so a window of tones alone may end before a compliant
    target's first report; the check, not this wait, decides what silence means."""
    legs = [leg for p in participants for _, leg in _reporting_legs(p)]

    def silent() -> int:
        return sum(1 for leg in legs if leg.rtcp_channel and not leg.rtcp_channel.received.received)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while silent() and loop.time() < deadline:
        await asyncio.sleep(0.05)  # RTCP arrivals have no event of their own; a bounded poll
    return silent()


def send_rtcp_probes(p: Participant) -> tuple[bytes, list[bytes]]:
    """Plain RTCP naming a marker, and SRTCP under a key nobody holds, on every reporting leg
    of `p`; returns the marker (in clear only in the plain packets) and the datagrams sent."""
    marker = f"confsec-probe-{secrets.token_hex(6)}@{p.name}".encode()
    sent: list[bytes] = []
    for kind, leg in _reporting_legs(p):
        ssrc = p.ssrcs.get(kind, 0)
        channel = leg.rtcp_channel
        assert channel is not None
        report = rtcp.compound(rtcp.receiver_report(ssrc), rtcp.sdes_cname(ssrc, marker.decode()))
        # An index well ahead of any seen, so that the receiver's replay window lets it through
        # to the tag check (libsrtp checks the window first).
        index = 1_000 + secrets.randbelow(1 << 20)
        key, salt = secrets.token_bytes(16), secrets.token_bytes(14)
        stranger = protect_srtcp("AES_CM_128_HMAC_SHA1_80", key, salt, report, index)
        for datagram in (report, stranger):  # the second already protected, under no one's key
            channel.send_plain(datagram)
            sent.append(datagram)
    return marker, sent


@dataclass
class RtcpProbe:
    """What `probe` sent: the window and the bytes `plain_rtcp_not_relayed` looks for."""

    sender: str
    marker: bytes
    since: float
    """Loop time the probes were sent: datagrams from then on are scanned."""
    sent: list[bytes] = field(default_factory=list)


async def probe(sender: Participant) -> RtcpProbe:
    """Send `sender`'s probes (`send_rtcp_probes`) now, on the loop that owns its sockets."""
    since = asyncio.get_running_loop().time()
    marker, sent = send_rtcp_probes(sender)
    return RtcpProbe(sender.name, marker, since, sent)


def _received(p: Participant, since: float) -> tuple[list[tuple[bool, bytes]], list[bytes]]:
    """Every datagram `p`'s reporting legs received since `since`, each with whether it was
    the target's (`Reception.attribute`; strays too, a probe is looked for everywhere), and
    the SRTCP they opened."""
    raw: list[tuple[bool, bytes]] = []
    opened: list[bytes] = []
    for _, leg in _reporting_legs(p):
        channel = leg.rtcp_channel
        for sock in (leg, channel.socket if channel is not None else None):
            if sock is None:
                continue
            raw += [(True, d) for t, _, d in list(sock.recent or ()) if t >= since]
            raw += [(False, d) for t, _, d in list(sock.strays_recent) if t is None or t >= since]
            opened += [d for t, d in list(sock.rtcp_opened) if t is None or t >= since]
    return raw, opened


def plain_rtcp_not_relayed(
    sender: Participant, others: Iterable[Participant], sent: RtcpProbe
) -> Evidence:
    """R3: none of `sender`'s probes reached anyone, as sent or re-protected under the
    receiver's key (its marker inside SRTCP the receiver opened), nor came back to it."""
    problems, live = [], []
    scanned = 0
    probes = set(sent.sent)
    for p in [*others, sender]:
        raw, opened = _received(p, sent.since)
        scanned += len(raw)
        whom = "came back to" if p is sender else "reached"
        # A probe is looked for in everything (only the target could have passed it on); the
        # control counts only the target's media.
        hits = [d for _, d in raw if d in probes or sent.marker in d]
        if hits:
            problems.append(f"{len(hits)} of the probes {whom} {p.name} as sent: {_hex(hits[0])}")
        laundered = sum(1 for d in opened if sent.marker in d)
        if laundered:
            problems.append(
                f"{laundered} of the plain probes {whom} {p.name} re-protected as SRTCP under "
                f"{p.name}'s key: the target accepted RTCP that was not SRTCP"
            )
        media = (d for ours, d in raw if ours and len(d) > 1 and not 192 <= d[1] <= 223)
        if p is not sender and any(media):
            live.append(p.name)
    if problems:
        raise NonConformance(
            f"{sender.name}'s plain RTCP and SRTCP under a key nobody holds were passed on: "
            + "; ".join(problems)
        )
    if not sent.sent:
        raise Inconclusive(f"{sender.name} has no leg that reports RTCP: no probe was sent")
    if not live:
        raise Inconclusive(
            "no other participant received media while the probes were sent: the control "
            "failed, so nothing shows the target would have passed anything on"
        )
    return Evidence.of(
        f"{', '.join(live)} received the target's media while the probes were sent",
        probe_datagrams_sent=len(sent.sent),
        datagrams_scanned=scanned,
        participants_listening=len(live),
        probe_packets_passed_on=0,
    )
