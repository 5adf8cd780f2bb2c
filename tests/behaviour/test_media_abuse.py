"""The media robustness probes of confsec/behaviour/media_abuse.py: what carol sends, checked
against a real libsrtp receiver, and the checks on hand-made windows (pass, fail, inconclusive)."""

from __future__ import annotations

import asyncio

import pytest

from confsec.behaviour import media_abuse as ma
from confsec.behaviour.media_abuse import Heard, Window
from confsec.errors import Inconclusive, LocalProtocolError, NonConformance
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import (
    AUTH_FAILED,
    MALFORMED,
    REPLAYED,
    SrtpReceiver,
    SrtpSender,
    new_master_key,
    new_receiver,
    new_sender,
)

SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"]


def _pair(suite: str) -> tuple[SrtpSender, SrtpReceiver]:
    ledger = KeyStreamLedger()
    key, salt = new_master_key(suite)
    tx = new_sender(ledger, StreamId("carol", "focus", "audio", "send"), suite, key, salt)
    rx = new_receiver(ledger, StreamId("focus", "carol", "audio", "recv"), suite, key, salt)
    return tx, rx


def _rtp(seq: int) -> bytes:
    return build_rtp(0, seq, seq * 160, 0xCA201, b"\x55" * 160)


# -- what carol sends ----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_every_truncation_is_refused_as_malformed_and_the_stream_goes_on(suite: str) -> None:
    tx, rx = _pair(suite)
    packet = tx.protect(_rtp(1))
    cuts = ma.truncations(packet, tx.profile.auth_tag_len)
    assert [len(c) for c in cuts] == [5, 12, 12 + tx.profile.auth_tag_len - 1]
    assert all(packet.startswith(c) for c in cuts)
    for cut in cuts:
        assert rx.try_unprotect(cut) is None and rx.last_status == MALFORMED
    assert rx.try_unprotect(packet) == _rtp(1)  # a truncated copy left no trace


@pytest.mark.parametrize("suite", SUITES)
def test_a_forged_packet_fails_authentication_and_a_replay_is_refused(suite: str) -> None:
    tx, rx = _pair(suite)
    forger = ma.Forger(tx)
    forged = forger.protect(_rtp(1))
    assert forger.sent == 1 and len(forged) == 12 + 160 + tx.profile.auth_tag_len
    assert rx.try_unprotect(forged) is None and rx.last_status == AUTH_FAILED
    recorder = ma.Recorder(tx)
    genuine = [recorder.protect(_rtp(n)) for n in range(2, 6)]
    assert recorder.packets == genuine
    assert all(rx.try_unprotect(p) is not None for p in genuine)
    replayer = ma.Replayer(recorder.packets)
    replayed = [replayer.protect(_rtp(99)) for _ in genuine]
    assert replayed == genuine and replayer.sent == 4
    for p in replayed:
        assert rx.try_unprotect(p) is None and rx.last_status == REPLAYED


def test_the_recorder_is_bounded_and_nothing_to_forge_or_replay_is_a_local_error() -> None:
    tx, _ = _pair(SUITES[0])
    recorder = ma.Recorder(tx, limit=2)
    for n in range(5):
        recorder.protect(_rtp(n))
    assert len(recorder.packets) == 2
    with pytest.raises(LocalProtocolError):
        ma.Replayer([])
    with pytest.raises(LocalProtocolError):
        ma.forge(b"")
    with pytest.raises(LocalProtocolError):
        ma.truncations(b"\x80" * 12, 10)


def test_the_truncator_sends_a_cut_copy_before_each_genuine_packet() -> None:
    async def main() -> list[bytes]:
        carol = await MediaLeg.open()
        mixer = await MediaLeg.open()
        carol.set_remote(mixer.local_addr)
        got: list[bytes] = []
        mixer.on_packet = lambda data, addr, t: got.append(data)
        tx, _ = _pair(SUITES[0])
        truncator = ma.Truncator(tx, carol)
        carol.start_sending(truncator, ssrc=0xCA201, count=3)
        await mixer.wait_for_packets(6, timeout=5)
        assert truncator.sent == 3
        carol.close()
        mixer.close()
        return got

    got = asyncio.run(asyncio.wait_for(main(), 10))
    assert [len(p) for p in got] == [5, 12 + 160 + 10, 12, 12 + 160 + 10, 21, 12 + 160 + 10]


# -- the checks ----------------------------------------------------------------------------------

NAMES = ("alice", "bob", "carol")


def _heard(tones: str, received: int = 50, rekeys: tuple[int, int] = (1, 1)) -> Heard:
    return Heard(received, received, frozenset(tones.split()), rekeys)


def _baseline(**heard: Heard) -> Window:
    everyone = {
        "alice": _heard("bob carol"),
        "bob": _heard("alice carol"),
        "carol": _heard("alice bob"),
    }
    return Window(1.0, frozenset(NAMES), everyone | heard)


def _probe(abuse: str, abusive: int = 50, **heard: Heard) -> Window:
    senders = frozenset(NAMES) if abuse == ma.TRUNCATED else frozenset({"alice", "bob"})
    fine = {
        "alice": _heard("bob carol" if abuse == ma.TRUNCATED else "bob"),
        "bob": _heard("alice carol" if abuse == ma.TRUNCATED else "alice"),
        "carol": _heard("alice bob"),
    }
    return Window(1.0, senders, fine | heard, "carol", abuse, abusive)


def test_a_baseline_where_someone_is_not_heard_is_inconclusive() -> None:
    ma.everyone_heard(_baseline())
    with pytest.raises(Inconclusive, match="alice did not hear carol"):
        ma.everyone_heard(_baseline(alice=_heard("bob")))


def test_still_hears_passes_fails_and_is_inconclusive_without_a_baseline() -> None:
    speakers = ["bob", "carol"]
    ma.still_hears(_baseline(), _probe(ma.TRUNCATED), "alice", speakers)
    silent = _probe(ma.TRUNCATED, alice=_heard("", received=0))
    with pytest.raises(NonConformance, match="no longer hears bob, carol"):
        ma.still_hears(_baseline(), silent, "alice", speakers)
    with pytest.raises(NonConformance, match="no longer hears carol"):
        ma.still_hears(_baseline(), _probe(ma.TRUNCATED, alice=_heard("bob")), "alice", speakers)
    deaf_before = _baseline(alice=_heard(""))
    with pytest.raises(Inconclusive, match="before the probe either"):
        ma.still_hears(deaf_before, silent, "alice", speakers)
    with pytest.raises(Inconclusive, match="baseline"):
        ma.still_hears(None, silent, "alice", speakers)
    with pytest.raises(Inconclusive, match="sent no truncated packets"):
        ma.still_hears(_baseline(), _probe(ma.TRUNCATED, abusive=0), "alice", speakers)
    with pytest.raises(Inconclusive, match="no truncated SRTP was sent"):
        ma.still_hears(_baseline(), _probe(ma.FORGED), "alice", speakers)


@pytest.mark.parametrize("abuse", [ma.REPLAYED, ma.FORGED])
def test_does_not_hear_passes_and_fails(abuse: str) -> None:
    ma.does_not_hear(_baseline(), _probe(abuse), "alice", "carol", abuse)
    heard = _probe(abuse, abusive=48, alice=_heard("bob carol"))
    with pytest.raises(NonConformance, match="48 SRTP packets") as exc:
        ma.does_not_hear(_baseline(), heard, "alice", "carol", abuse)
    assert ("3.3.2" in str(exc.value)) == (abuse == ma.REPLAYED)


@pytest.mark.parametrize("abuse", [ma.REPLAYED, ma.FORGED])
def test_does_not_hear_never_passes_on_what_it_could_not_observe(abuse: str) -> None:
    check = ma.does_not_hear
    nobody = _probe(abuse, alice=_heard("", received=0))
    with pytest.raises(Inconclusive, match="heard nobody"):
        check(_baseline(), nobody, "alice", "carol", abuse)
    with pytest.raises(Inconclusive, match="genuine tone"):
        check(_baseline(alice=_heard("bob")), _probe(abuse), "alice", "carol", abuse)
    rekeyed = _probe(abuse, carol=_heard("alice bob", rekeys=(1, 2)))
    with pytest.raises(Inconclusive, match="new keys"):
        check(_baseline(), rekeyed, "alice", "carol", abuse)
    with pytest.raises(Inconclusive, match="sent no"):
        check(_baseline(), _probe(abuse, abusive=0), "alice", "carol", abuse)
    with pytest.raises(Inconclusive, match="bob sent no"):
        check(_baseline(), _probe(abuse), "alice", "bob", abuse)
    with pytest.raises(Inconclusive):
        check(_baseline(), None, "alice", "carol", abuse)
