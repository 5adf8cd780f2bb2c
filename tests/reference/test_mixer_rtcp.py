"""The reference mixer's RTCP (issue 17), on loopback: participants are real `MediaLeg`s.

The mixer terminates RTCP: it reports on each stream in SRTCP under the focus's key for that
participant, on the muxed port or the participant's own RTCP port (RFC 3605), and it takes only
SRTCP that authenticates, recording everything else as an observation about the peer that sent
it (before the keys are installed, and after the release, while its sockets linger for the BYE).
Each RTCP defect switch is shown to do what it says, so that the scenarios that catch them
(tests/test_self_validation.py) are catching the right thing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from confsec.media import rtcp
from confsec.media.defect_srtp import SRTP_LABELS, protect_srtcp, srtcp_opens_under
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.srtp import new_receiver, new_sender
from confsec.reference.mixer import RTCP_LINGER_S, Mixer
from confsec.reference.mixer_control import RTCP_SUFFIX, LegSetup, SrtpKeys, StreamSetup

SUITE = "AES_CM_128_HMAC_SHA1_80"


def _keys() -> SrtpKeys:
    return SrtpKeys(SUITE, os.urandom(16), os.urandom(14))


@dataclass
class Peer:
    name: str
    leg: MediaLeg
    rtcp_port: MediaLeg | None
    send: SrtpKeys
    """The participant's sending key (the mixer's rx)."""
    recv: SrtpKeys
    """The focus's sending key for it (the mixer's tx)."""


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Await a condition the mixer's one-second report timer will make true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return cond()


async def _join(mixer: Mixer, name: str, *, mux: bool = True, install: bool = True) -> Peer:
    addrs = await mixer.allocate("c", name, ("audio",))
    leg = await MediaLeg.open(recent_limit=256)
    own = None if mux else await MediaLeg.open(recent_limit=256)
    peer = Peer(name, leg, own, _keys(), _keys())
    ledger = KeyStreamLedger()
    rx = new_receiver(ledger, StreamId(name, "mixer", "audio", "recv"), SUITE, *_kv(peer.recv))
    leg.set_receiver(rx)
    if own is not None:
        own.set_receiver(
            new_receiver(
                ledger, StreamId(name, "mixer", "audio", "recv", "rtcp"), SUITE, *_kv(peer.recv)
            )
        )
    leg.sender = new_sender(
        ledger, StreamId(name, "mixer", "audio", "send"), SUITE, *_kv(peer.send)
    )
    leg.set_remote(addrs["audio"])
    if own is not None:
        own.set_remote(addrs["audio" + RTCP_SUFFIX])
    if install:
        _install(mixer, peer)
    return peer


def _kv(k: SrtpKeys) -> tuple[bytes, bytes]:
    return k.key, k.salt


def _install(mixer: Mixer, peer: Peer) -> None:
    rtcp_remote = peer.rtcp_port.local_addr[:2] if peer.rtcp_port is not None else None
    setup = StreamSetup(
        "audio",
        0,
        peer.leg.local_addr[:2],
        peer.send,
        peer.recv,
        0x1000 + len(peer.name),
        rtcp_remote=rtcp_remote,
    )
    mixer.install(LegSetup("c", peer.name, (setup,)))


def _rtcp_socket(peer: Peer) -> MediaLeg:
    return peer.rtcp_port if peer.rtcp_port is not None else peer.leg


def _report(ssrc: int, cname: str) -> bytes:
    return rtcp.compound(rtcp.receiver_report(ssrc), rtcp.sdes_cname(ssrc, cname))


def _run(main: Callable[[], object]) -> None:
    asyncio.run(main())  # type: ignore[arg-type]


@pytest.mark.parametrize("mux", [True, False], ids=["rtcp-mux", "own-rtcp-port"])
def test_the_mixer_reports_in_srtcp_that_authenticates(mux: bool) -> None:
    async def main() -> None:
        mixer = Mixer()
        try:
            peer = await _join(mixer, "alice", mux=mux)
            sock = _rtcp_socket(peer)
            assert await _until(lambda: sock.whole(sock.rtcp_stats).accepted >= 2)
            stats = sock.whole(sock.rtcp_stats)
            assert stats.refused == 0, stats
            types = [[p.packet_type for p in rtcp.parse_compound(d)] for _, d in sock.rtcp_opened]
            assert [rtcp.SR, rtcp.SDES] in types, types
            # In clear on the wire nothing names the conference's mixer.
            assert not any(b"mixer@" in d for _, _, d in sock.recent or ())
            if not mux:  # nothing RTCP on the RTP port when the peer did not mux
                assert peer.leg.whole(peer.leg.rtcp_stats).received == 0
            assert mixer.rtcp_record.sent >= 2
        finally:
            mixer.close()

    _run(main)


def test_participant_srtcp_is_taken_and_plain_or_forged_rtcp_recorded_about_the_peer() -> None:
    async def main() -> None:
        mixer = Mixer()
        try:
            alice = await _join(mixer, "alice")
            record = mixer.rtcp_record
            assert alice.leg.sender is not None
            alice.leg.send_raw(alice.leg.sender.protect_rtcp(_report(7, "alice@confsec")))
            assert await _until(lambda: record.srtcp_ok == 1)
            alice.leg.send_raw(_report(7, "alice@confsec"))  # plain
            # An index not seen yet: libsrtp checks the replay window before the tag, so a
            # forgery that repeats a seen index is dropped as a replay (dropped all the same).
            forged = protect_srtcp(SUITE, os.urandom(16), os.urandom(14), _report(7, "x"), 99)
            alice.leg.send_raw(forged)
            assert await _until(lambda: record.dropped == 2)
            o = record.observations[("alice", "audio")]
            assert o.counts == {"plain": 1, "auth-failed": 1}, o.counts
            assert o.source == alice.leg.local_addr[:2]
            assert [kind for _, kind, _ in o.samples] == ["plain", "auth-failed"]
            assert "alice audio from 127.0.0.1" in o.sentence()
        finally:
            mixer.close()

    _run(main)


def test_rtcp_from_an_address_that_is_not_the_peers_is_no_observation_about_it() -> None:
    """On a shared machine another process's RTCP reaches a mixer port (one its owner closed
    a moment ago): refused, but counted as a stray, never recorded about the peer whose
    stream the port is. SRTCP that authenticates is taken from wherever it comes."""

    async def main() -> None:
        mixer = Mixer()
        stranger = await MediaLeg.open()
        try:
            alice = await _join(mixer, "alice")
            record = mixer.rtcp_record
            port = alice.leg.remote
            assert port is not None and alice.leg.sender is not None
            stranger.send_raw(_report(7, "someone@else"), port)  # plain
            forged = protect_srtcp(SUITE, os.urandom(16), os.urandom(14), _report(7, "x"), 99)
            stranger.send_raw(forged, port)
            assert await _until(lambda: record.strays == 2)
            assert (record.dropped, record.observations) == (0, {})
            stranger.send_raw(alice.leg.sender.protect_rtcp(_report(7, "alice@confsec")), port)
            assert await _until(lambda: record.srtcp_ok == 1)
            alice.leg.send_raw(_report(7, "alice@confsec"))  # from alice: about alice
            assert await _until(lambda: record.dropped == 1)
            assert record.observations[("alice", "audio")].counts == {"plain": 1}
        finally:
            stranger.close()
            mixer.close()

    _run(main)


def test_plain_rtcp_before_the_install_and_a_bye_after_the_release_are_recorded() -> None:
    """What baresip does (tests/thirdparty/test_baresip.py): a plain APP right after the
    answer, before the focus installed the keys, and its RTCP BYE after the SIP BYE."""

    async def main() -> None:
        mixer = Mixer()
        try:
            bob = await _join(mixer, "bob", mux=False, install=False)
            sock = _rtcp_socket(bob)
            sock.send_raw(rtcp.compound(rtcp.receiver_report(9)))
            record = mixer.rtcp_record
            assert await _until(lambda: record.dropped == 1)
            _install(mixer, bob)
            mixer.release("c", "bob")
            bye = rtcp.compound(rtcp.bye(9, "Adjo"), rtcp.sdes_cname(9, "sips:bob@example"))
            sock.send_raw(bye)
            assert await _until(lambda: record.dropped == 2)
            o = record.observations[("bob", "audio")]
            assert [d for _, _, d in o.samples][-1] == bye
            assert sock.socket_errors == 0  # the port was still open: no ICMP unreachable
        finally:
            mixer.close()

    _run(main)
    assert RTCP_LINGER_S >= 1.0


def test_mixer_sends_plain_rtcp_defect_sends_the_reports_in_clear() -> None:
    async def main() -> None:
        mixer = Mixer(defects=frozenset({"mixer-sends-plain-rtcp"}))
        try:
            alice = await _join(mixer, "alice")
            stats = alice.leg.whole
            assert await _until(lambda: stats(alice.leg.rtcp_stats).plain >= 1)
            assert stats(alice.leg.rtcp_stats).accepted == 0
            assert any(b"mixer@c" in d for _, d in alice.leg.rtcp_refused_samples)
        finally:
            mixer.close()

    _run(main)


def test_srtcp_srtp_keystream_defect_protects_srtcp_with_the_srtp_session_keys() -> None:
    async def main() -> None:
        mixer = Mixer(defects=frozenset({"srtcp-srtp-keystream"}))
        try:
            alice = await _join(mixer, "alice")
            leg = alice.leg
            assert await _until(lambda: leg.whole(leg.rtcp_stats).auth_failed >= 1)
            assert leg.whole(leg.rtcp_stats).accepted == 0
            _, data = leg.rtcp_refused_samples[0]
            assert srtcp_opens_under(SUITE, *_kv(alice.recv), data, SRTP_LABELS)
        finally:
            mixer.close()

    _run(main)


@pytest.mark.parametrize("relays", [False, True], ids=["compliant", "mixer-relays-rtcp"])
def test_mixer_relays_rtcp_defect_passes_a_participants_rtcp_on_unprocessed(relays: bool) -> None:
    async def main() -> None:
        mixer = Mixer(defects=frozenset({"mixer-relays-rtcp"} if relays else ()))
        try:
            alice = await _join(mixer, "alice")
            bob = await _join(mixer, "bob")
            marker = _report(7, "marker@alice")
            alice.leg.send_raw(marker)
            assert await _until(lambda: mixer.rtcp_record.dropped == 1)
            # Bob hears the mixer's reports meanwhile: the control that he is listening.
            assert await _until(lambda: bob.leg.whole(bob.leg.rtcp_stats).accepted >= 1)
            relayed = await _until(
                lambda: any(d == marker for _, _, d in bob.leg.recent or ()), 1.5
            )
            assert relayed == relays
        finally:
            mixer.close()

    _run(main)
