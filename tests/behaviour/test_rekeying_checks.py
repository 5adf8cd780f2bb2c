"""The R5/R6 judgements of confsec/behaviour/rekeying.py on hand-made ledgers and packets."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from confsec.behaviour import group_keys, membership, rekeying
from confsec.behaviour.membership import MembershipEvent
from confsec.behaviour.participant import OfferSpec
from confsec.errors import Inconclusive, NonConformance
from confsec.media import rtcp
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_receiver, new_sender
from confsec.report.verdicts import Verdict
from confsec.runtime.punctuality import Lateness
from confsec.target.model import Capabilities
from tests.behaviour.judging import judge

SUITE = "AES_CM_128_HMAC_SHA1_80"


def _key() -> tuple[bytes, bytes]:
    return os.urandom(16), os.urandom(14)


def _recv(ledger: KeyStreamLedger, owner: str, label: str, key: tuple[bytes, bytes]) -> None:
    new_receiver(ledger, StreamId(owner, "focus", "audio", "recv", label), SUITE, *key)


def test_fresh_keys_pass_and_a_repeated_salt_fails() -> None:
    ledger = KeyStreamLedger()
    group = _key()
    for owner in ("alice", "bob"):
        _recv(ledger, owner, "", _key())
        _recv(ledger, owner, "common", group)  # a group key is shared by design
        _recv(ledger, owner, "epoch-2", _key())  # a rekey: new keys to judge
    rekeying.keys_fresh(ledger)
    k1 = _key()
    _recv(ledger, "carol", "", k1)
    _recv(ledger, "carol", "epoch-2", (os.urandom(16), k1[1]))
    with pytest.raises(NonConformance, match="salt"):
        rekeying.keys_fresh(ledger)


def test_group_key_equal_to_a_unicast_key_fails() -> None:
    ledger = KeyStreamLedger()
    k = _key()
    _recv(ledger, "alice", "", k)
    _recv(ledger, "bob", "common", _key())
    group_keys.group_key_distinct(ledger)
    _recv(ledger, "carol", "common epoch-2", k)
    with pytest.raises(NonConformance, match="shares key material"):
        group_keys.group_key_distinct(ledger)


def test_trial_decryption_finds_packets_under_an_old_key() -> None:
    ledger = KeyStreamLedger()
    old, new = _key(), _key()
    tx_old = new_sender(ledger, StreamId("mixer", "x", "audio", "send", "1"), SUITE, *old)
    tx_new = new_sender(ledger, StreamId("mixer", "x", "audio", "send", "2"), SUITE, *new)
    packets = [tx_new.protect(build_rtp(0, n, n * 160, 7, b"\xff" * 160)) for n in range(5)]
    keys = [(SUITE, *old)]
    assert rekeying.authenticating(packets, keys) == {}
    packets.append(tx_old.protect(build_rtp(0, 9, 9 * 160, 7, b"\xff" * 160)))
    assert sum(rekeying.authenticating(packets, keys).values()) == 1


def test_participant_names_use_reference_accounts() -> None:
    names = membership.participant_names(10)
    assert names[:3] == ["alice", "bob", "carol"] and names[-1] == "guest10" and len(names) == 10


# -- R6 per medium: audio, video and the common stream judged each on their own packets -----------


def test_stream_medium_tells_the_common_stream_from_audio_and_video() -> None:
    assert rekeying.stream_medium("bob <- focus audio") == "audio"
    assert rekeying.stream_medium("bob <- focus audio [common epoch-2]") == "common"
    assert rekeying.stream_medium("bob <- focus audio [common]") == "common"
    assert rekeying.stream_medium("bob -> focus video [epoch-3]") == "video"


def test_the_media_judged_come_from_the_capability_statement() -> None:
    assert rekeying.claimed_media(EVERYTHING) == ("audio", "video", "common")
    assert rekeying.claimed_offer(EVERYTHING) == OfferSpec(media=("audio", "video"), common=True)
    audio_only = Capabilities(video=False, group_keys=False)
    assert rekeying.claimed_media(audio_only) == ("audio",)
    assert rekeying.claimed_offer(audio_only) == OfferSpec(media=("audio",), common=False)


Key2 = tuple[bytes, bytes]
EVERYTHING = Capabilities(video=True, group_keys=True)


def _row(ledger: KeyStreamLedger, owner: str, media: str, label: str, key: Key2) -> None:
    new_receiver(ledger, StreamId(owner, "focus", media, "recv", label), SUITE, *key)


def test_freshness_is_judged_per_medium() -> None:
    ledger = KeyStreamLedger()
    a1, v1, g1 = _key(), _key(), _key()
    _row(ledger, "bob", "audio", "", a1)
    _row(ledger, "bob", "video", "", v1)
    _row(ledger, "bob", "audio", "common", g1)
    _row(ledger, "bob", "audio", "epoch-2", _key())
    _row(ledger, "bob", "audio", "common epoch-2", _key())
    # No new video key came from the target: video freshness cannot be judged.
    with pytest.raises(Inconclusive, match="no new video key"):
        rekeying.keys_fresh(ledger, "video")
    assert rekeying.keys_fresh(ledger, "audio").counts["rekeyed keys"] == 1
    # A new video key that keeps the old video salt: video is not fresh, audio still is.
    _row(ledger, "bob", "video", "epoch-2", (os.urandom(16), v1[1]))
    with pytest.raises(NonConformance, match="salt of bob <- focus video"):
        rekeying.keys_fresh(ledger, "video")
    rekeying.keys_fresh(ledger, "audio")
    rekeying.keys_fresh(ledger, "common")


def test_a_key_repeated_across_media_is_a_finding_of_the_later_medium() -> None:
    ledger = KeyStreamLedger()
    a1 = _key()
    _row(ledger, "bob", "audio", "", a1)
    _row(ledger, "bob", "audio", "epoch-2", _key())
    _row(ledger, "bob", "video", "epoch-2", a1)  # video gets the old audio key
    rekeying.keys_fresh(ledger, "audio")
    with pytest.raises(NonConformance, match=r"video .* repeats that of bob <- focus audio"):
        rekeying.keys_fresh(ledger, "video")


# A hand-built conference: carol left at t=1.0 (200 OK at 1.1, settled at 2.0); bob stayed, and
# got new keys at t=1.05 for the legs `changed` names; the focus sent each leg packets at
# 2.1-2.3 s. Packets are real SRTP under real keys.

LEAVE = MembershipEvent("leave", "carol", started=1.0, done=1.1, settled=2.0)
SENT_AT = (2.1, 2.2, 2.3)


def _packets(
    key: Key2, times: tuple[float, ...], ssrc: int = 7
) -> list[tuple[float, object, bytes]]:
    tx = new_sender(KeyStreamLedger(), StreamId("focus", "x", "audio", "send"), SUITE, *key)
    return [
        (t, None, tx.protect(build_rtp(0, n, n * 160, ssrc, b"\xff" * 160)))
        for n, t in enumerate(times)
    ]


def _conference(
    old: dict[str, Key2],
    new: dict[str, Key2],
    sent: dict[str, Key2],
    caps: Capabilities = EVERYTHING,
    srtcp: dict[str, list[tuple[float, object, bytes]]] | None = None,
) -> SimpleNamespace:
    """bob's legs got `old` keys at admission and `new` ones at 1.05 (those that differ are
    `changed`); after the leave the focus sent each leg packets under `sent`. carol held `old`
    (for the common stream: the same group key as bob)."""
    ledger = KeyStreamLedger()
    for kind, key in old.items():
        media, label = ("audio", "common") if kind == "common" else (kind, "")
        group_key = key if kind == "common" else _key()  # carol's unicast keys are her own
        _row(ledger, "carol", media, label, group_key)
    changed = tuple(k for k in new if new[k] != old.get(k))
    srtcp = srtcp or {}
    bob = SimpleNamespace(
        name="bob",
        rekeys=[
            SimpleNamespace(
                at=0.0, changed=tuple(old), recv_keys={k: (SUITE, *v) for k, v in old.items()}
            ),
            SimpleNamespace(
                at=1.05, changed=changed, recv_keys={k: (SUITE, *v) for k, v in new.items()}
            ),
        ],
        legs={
            kind: SimpleNamespace(
                remote=("127.0.0.1", 40000),
                recent=(_packets(sent[kind], SENT_AT) if kind in sent else [])
                + srtcp.get(kind, []),
                rtcp_channel=None,  # rtcp-mux: SRTCP arrives among the packets in `recent`
            )
            for kind in old
        },
    )
    conf = SimpleNamespace(
        ledger=ledger,
        participants={"bob": bob},
        target=SimpleNamespace(capabilities=caps),
        runtime=SimpleNamespace(punctuality=SimpleNamespace(during=lambda *a: Lateness(1.0, 0.0))),
    )
    return SimpleNamespace(
        conf=conf,
        event=lambda kind, name: LEAVE,
        departure=lambda name: LEAVE,
        remaining=lambda: [bob],
        lateness=None,
        latencies={},
        latency_event=None,
    )


def _srtcp(key: Key2, t: float, ssrc: int = 7) -> tuple[float, object, bytes]:
    """One SRTCP sender report under `key`, arriving at `t`."""
    tx = new_sender(KeyStreamLedger(), StreamId("focus", "x", "audio", "send"), SUITE, *key)
    report = rtcp.compound(rtcp.sender_report(ssrc, 0, 0, 3, 480), rtcp.sdes_cname(ssrc, "mix"))
    return (t, None, tx.protect_rtcp(report))


def _three() -> dict[str, Key2]:
    return {"audio": _key(), "video": _key(), "common": _key()}


def test_a_target_that_rekeys_audio_but_not_video_fails_on_video_only() -> None:
    old, new = _three(), _three()
    new["video"] = old["video"]  # rekey-audio-only: video re-offered with its old key
    m = _conference(old, new, sent=new)
    for medium in ("audio", "common"):
        verdict, why = judge(rekeying.rekeyed_completely, m, "leave", "carol", medium)
        assert verdict is Verdict.PASS and "1 streams rekeyed" in why, (medium, why)
    verdict, why = judge(rekeying.rekeyed_completely, m, "leave", "carol", "video")
    assert verdict is Verdict.FAIL and "bob's video stream was not rekeyed" in why
    # Every stream at once (the size outline) fails too.
    assert judge(rekeying.rekeyed_completely, m, "leave", "carol")[0] is Verdict.FAIL


def test_a_medium_that_carried_no_packet_is_inconclusive_not_a_pass() -> None:
    old, new = _three(), _three()
    m = _conference(old, new, sent={"audio": new["audio"], "common": new["common"]})
    verdict, why = judge(rekeying.rekeyed_completely, m, "leave", "carol", "video")
    assert verdict is Verdict.INCONCLUSIVE and "no video packet after the leave" in why
    verdict, why = judge(rekeying.forward_security, m, "carol", "video")
    assert verdict is Verdict.INCONCLUSIVE and "no video packet" in why


def test_a_medium_the_target_does_not_claim_is_not_applicable() -> None:
    old = _three()
    m = _conference(old, _three(), sent=old, caps=Capabilities(video=False, group_keys=True))
    for check, args in (
        (rekeying.rekeyed_completely, ("leave", "carol", "video")),
        (rekeying.forward_security, ("carol", "video")),
        (rekeying.fresh_keys_in_use, ("video",)),
    ):
        assert judge(check, m, *args)[0] is Verdict.NOT_APPLICABLE, check


def test_forward_security_of_the_common_stream_rests_on_its_own_packets() -> None:
    old, new = _three(), _three()
    # rekey-partial: the common stream stays on the group key carol held.
    new["common"] = old["common"]
    m = _conference(old, new, sent=new)
    for medium in ("audio", "video"):
        verdict, why = judge(rekeying.forward_security, m, "carol", medium)
        assert verdict is Verdict.PASS and "3 packets judged" in why, (medium, why)
    verdict, why = judge(rekeying.forward_security, m, "carol", "common")
    assert verdict is Verdict.FAIL and "3 of 3 common packets bob received" in why


def test_forward_security_needs_packets_that_open_under_the_receivers_own_keys() -> None:
    """The positive control: packets under a key nobody was given open under none of carol's
    keys either, and prove nothing."""
    old, new = _three(), _three()
    m = _conference(old, new, sent={**new, "audio": _key()})
    verdict, why = judge(rekeying.forward_security, m, "carol", "audio")
    assert verdict is Verdict.INCONCLUSIVE and "control failed" in why
    assert judge(rekeying.forward_security, m, "carol", "video")[0] is Verdict.PASS


# -- SRTCP moves with SRTP (issue 17) -------------------------------------------------------------


def test_srtcp_left_on_the_old_key_after_a_rekey_fails_completeness() -> None:
    old, new = _three(), _three()
    moved = _conference(old, new, sent=new, srtcp={"audio": [_srtcp(new["audio"], 2.4)]})
    verdict, why = judge(rekeying.rekeyed_completely, moved, "leave", "carol", "audio")
    assert verdict is Verdict.PASS and "1 srtcp under new keys" in why, why
    stale = _conference(old, new, sent=new, srtcp={"audio": [_srtcp(old["audio"], 2.4)]})
    verdict, why = judge(rekeying.rekeyed_completely, stale, "leave", "carol", "audio")
    assert verdict is Verdict.FAIL and "SRTCP was not rekeyed" in why, why
    # Before the media moved (2.05 < the first SRTP under the new key, 2.1), the old key is
    # still the one in use: not a finding.
    early = _conference(old, new, sent=new, srtcp={"audio": [_srtcp(old["audio"], 2.05)]})
    assert judge(rekeying.rekeyed_completely, early, "leave", "carol", "audio")[0] is Verdict.PASS


def test_srtcp_under_the_leavers_group_key_breaks_forward_security() -> None:
    old, new = _three(), _three()
    clean = _conference(old, new, sent=new, srtcp={"common": [_srtcp(new["common"], 2.4)]})
    verdict, why = judge(rekeying.forward_security, clean, "carol", "common")
    assert verdict is Verdict.PASS and "1 srtcp packets judged" in why, why
    # SRTP moved to the new group key, but the SRTCP of the mix stayed on the one carol held.
    leak = _conference(old, new, sent=new, srtcp={"common": [_srtcp(old["common"], 2.4)]})
    verdict, why = judge(rekeying.forward_security, leak, "carol", "common")
    assert verdict is Verdict.FAIL and "1 of 4 common packets bob received" in why, why
