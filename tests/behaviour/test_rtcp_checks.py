"""The R3 RTCP judgements of confsec/behaviour/rtcp_checks.py on real legs over loopback.

A "target" here is a MediaLeg that sends what a conference might: SRTCP under the participant's
key, plain RTCP, SRTCP under the SRTP session keys, another participant's SRTCP as it came, or a
participant's plain report re-protected under the receiver's key. Each is judged as the
scenario would judge it (`judge`), so a check that cannot fail, or passes on nothing, shows.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from confsec.behaviour import rtcp_checks
from confsec.codec.sdp import CryptoAttribute
from confsec.media import rtcp
from confsec.media.defect_srtp import protect_rtcp_with_srtp_keys, protect_srtcp
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtcp_channel import RtcpChannel
from confsec.media.srtp import new_receiver, new_sender
from confsec.report.verdicts import Verdict
from tests.behaviour.judging import judge

SUITE = "AES_CM_128_HMAC_SHA1_80"
Key = tuple[str, bytes, bytes]


def _key() -> Key:
    return (SUITE, os.urandom(16), os.urandom(14))


def _report(ssrc: int, cname: str) -> bytes:
    return rtcp.compound(rtcp.receiver_report(ssrc), rtcp.sdes_cname(ssrc, cname))


async def _participant(name: str, target: MediaLeg) -> SimpleNamespace:
    """A participant whose audio leg receives from `target` under `recv`, and sends under
    `send` (its SDES key: what `diagnose` tries for SRTCP passed on as it came)."""
    leg = await MediaLeg.open(recent_limit=256)
    await RtcpChannel.open(leg, f"{name}@confsec", own_socket=False)
    assert leg.rtcp_channel is not None
    leg.rtcp_channel.use_mux()
    recv, send = _key(), _key()
    ledger = KeyStreamLedger()
    leg.set_receiver(new_receiver(ledger, StreamId(name, "t", "audio", "recv"), *recv))
    leg.sender = new_sender(ledger, StreamId(name, "t", "audio", "send"), *send)
    leg.set_remote(target.local_addr[:2])
    crypto = CryptoAttribute(1, SUITE, send[1], send[2])
    return SimpleNamespace(
        name=name,
        legs={"audio": leg},
        rekeys=[SimpleNamespace(recv_keys={"audio": recv})],
        send_crypto={"audio": crypto},
        ssrcs={"audio": 0x100 + len(name)},
        recv=recv,
        send=send,
    )


def _to(target: MediaLeg, p: Any, data: bytes) -> None:
    target.send_raw(data, p.legs["audio"].local_addr[:2])


def _sender(p: Any, key: Key | None = None) -> Any:
    return new_sender(
        KeyStreamLedger(), StreamId("target", p.name, "audio", "send"), *(key or p.recv)
    )


async def _settle(*legs: MediaLeg, n: int) -> None:
    await asyncio.gather(*(leg.wait_for_packets(n, 5) for leg in legs))


def _run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main())


def test_srtcp_that_authenticates_passes_and_silence_is_inconclusive() -> None:
    async def main() -> None:
        target = await MediaLeg.open()
        alice, bob = await _participant("alice", target), await _participant("bob", target)
        verdict, why = judge(rtcp_checks.srtcp_from_target, [alice, bob])
        assert verdict is Verdict.INCONCLUSIVE and "sent no RTCP to 2" in why, why
        for p in (alice, bob):
            tx = _sender(p)
            for _ in range(2):
                _to(target, p, tx.protect_rtcp(_report(9, "mixer@c")))
        await _settle(alice.legs["audio"], bob.legs["audio"], n=2)
        verdict, why = judge(rtcp_checks.srtcp_from_target, [alice, bob])
        assert verdict is Verdict.PASS and "4 srtcp packets judged" in why, why
        assert "2 streams with srtcp" in why
        target.close()

    _run(main)


def test_each_way_of_getting_srtcp_wrong_fails_and_is_named() -> None:
    async def main() -> None:
        target = await MediaLeg.open()
        alice, bob = await _participant("alice", target), await _participant("bob", target)
        cases = {
            "plain RTCP (packet types 201,202)": _report(9, "mixer@c"),
            "SRTP session keys": protect_rtcp_with_srtp_keys(*alice.recv, _report(9, "m"), 1),
            # bob's own SRTCP, passed on to alice as it came
            "bob's own SRTCP, passed on": _sender(bob, bob.send).protect_rtcp(_report(7, "b")),
            "does not authenticate": protect_srtcp(*_key(), _report(9, "m"), 5),
        }
        for n, (words, data) in enumerate(cases.items(), 1):
            _to(target, alice, data)
            await _settle(alice.legs["audio"], n=n)
            verdict, why = judge(rtcp_checks.srtcp_from_target, [alice, bob])
            assert verdict is Verdict.FAIL, why
            assert words in why, (words, why)
            assert f"{n} of {n} RTCP packets" in why, why
        target.close()

    _run(main)


def test_probes_passed_on_as_sent_or_re_protected_fail() -> None:
    async def main() -> None:
        target = await MediaLeg.open()
        alice, bob, carol = [await _participant(n, target) for n in ("alice", "bob", "carol")]
        others = [alice, bob]
        probe = await rtcp_checks.probe(carol)
        assert len(probe.sent) == 2  # a plain report and SRTCP under a stranger's key
        await _settle(target, n=2)  # the "target" got carol's probes
        # The control: the others receive the target's media meanwhile.
        verdict, why = judge(rtcp_checks.plain_rtcp_not_relayed, carol, others, probe)
        assert verdict is Verdict.INCONCLUSIVE and "control failed" in why, why
        for p in others:
            _to(target, p, _sender(p).protect(b"\x80\x00\x00\x01" + bytes(8) + bytes(160)))
        await _settle(alice.legs["audio"], bob.legs["audio"], n=1)
        verdict, why = judge(rtcp_checks.plain_rtcp_not_relayed, carol, others, probe)
        assert verdict is Verdict.PASS and "alice, bob received" in why, why
        # Relayed as sent: the stranger's SRTCP reaches bob byte for byte.
        _to(target, bob, probe.sent[1])
        await _settle(bob.legs["audio"], n=2)
        verdict, why = judge(rtcp_checks.plain_rtcp_not_relayed, carol, others, probe)
        assert verdict is Verdict.FAIL and "reached bob as sent" in why, why
        # Re-protected: carol's plain report, accepted and sent on under alice's key.
        _to(target, alice, _sender(alice).protect_rtcp(probe.sent[0]))
        await _settle(alice.legs["audio"], n=2)
        verdict, why = judge(rtcp_checks.plain_rtcp_not_relayed, carol, others, probe)
        assert "re-protected as SRTCP under alice's key" in why, why
        target.close()

    _run(main)


def test_a_strangers_srtcp_is_set_aside_and_neither_fails_nor_passes_the_check() -> None:
    """The CI failure: on a shared machine SRTCP from another process (a port that was its a
    moment ago) reaches alice. It is not the target's: the check stays inconclusive, and says
    what it set aside; the stranger's media does not make the probe's control either."""

    async def main() -> None:
        target, stranger = await MediaLeg.open(), await MediaLeg.open()
        alice, bob, carol = [await _participant(n, target) for n in ("alice", "bob", "carol")]
        foreign = protect_srtcp(*_key(), _report(9, "someone@else"), 5)
        for _ in range(3):
            stranger.send_raw(foreign, alice.legs["audio"].local_addr[:2])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while alice.legs["audio"].strays < 3 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        verdict, why = judge(rtcp_checks.srtcp_from_target, [alice, bob])
        assert verdict is Verdict.INCONCLUSIVE and "sent no RTCP to 2" in why, why
        assert "3 datagrams from 127.0.0.1:" in why and "set aside" in why, why
        # The target's own SRTCP beside it passes, and the strays are counted in the evidence.
        _to(target, alice, _sender(alice).protect_rtcp(_report(9, "mixer@c")))
        await _settle(alice.legs["audio"], n=1)
        verdict, why = judge(rtcp_checks.srtcp_from_target, [alice, bob])
        assert verdict is Verdict.PASS and "3 datagrams set aside" in why, why
        # A stranger's RTP is not the target's media: the probe's control still fails.
        probe = await rtcp_checks.probe(carol)
        rtp = _sender(bob, _key()).protect(b"\x80\x00\x00\x01" + bytes(8) + bytes(160))
        stranger.send_raw(rtp, bob.legs["audio"].local_addr[:2])
        while bob.legs["audio"].strays < 1 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        verdict, why = judge(rtcp_checks.plain_rtcp_not_relayed, carol, [alice, bob], probe)
        assert verdict is Verdict.INCONCLUSIVE and "control failed" in why, why
        target.close()
        stranger.close()

    _run(main)
