"""The reference focus's answers to offers made inside a participant's dialog (reoffer.py):
re-INVITE (RFC 3261 section 14) and UPDATE (RFC 3311), over real TLS and SRTP on loopback.

The R3 feature (features/r3_policy_every_offer.feature) pins the security verdicts; here the
reference's side is pinned case by case: a secure re-offer gets fresh keys that carry media, a
faulty one 488 with the session untouched, glare 491, the shape rules of RFC 3264 section 8,
a later rekey round that starts from the renegotiated streams, and what the defect switch does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour import checks
from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec, Participant, dialog_handler, send_in_dialog
from confsec.behaviour.reoffer import Reoffers, offer_sdp
from confsec.behaviour.reoffer_checks import kept_previous_keys, offer_refused
from confsec.codec.sdp import CryptoAttribute, MediaDescription, SessionDescription, parse_sdp
from confsec.codec.sip import Response
from confsec.errors import NonConformance
from confsec.reference.deployment import EmbeddedReference
from confsec.reference.policy import reoffer_refusal
from confsec.runtime.loop import LoopThread

BAD_OFFERS = ("plain RTP", "NULL_HMAC_SHA1_80", "UNENCRYPTED_SRTP")


def _two(conf: ConferenceRun) -> tuple[Participant, Participant]:
    assert conf.create("alice", OfferSpec()).status == 200
    assert conf.join("bob", OfferSpec()).status == 200
    conf.exchange_media(0.5)  # the join's rekey round is over before anyone re-offers
    return conf.participant("alice"), conf.participant("bob")


def _others(conf: ConferenceRun, name: str) -> list[Participant]:
    return [p for p in conf.participants.values() if p.name != name]


def test_every_faulty_reoffer_is_refused_and_the_session_keeps_its_keys(
    conf: ConferenceRun,
) -> None:
    alice, _ = _two(conf)
    reoffers = Reoffers(conf)
    control = reoffers.control("alice")
    for method in ("re-INVITE", "UPDATE"):
        for what in BAD_OFFERS:
            offer = reoffers.offer("alice", method, what)
            assert offer.status == 488, (method, what, offer.status, offer.reason)
            assert offer.probe_status == 200  # the in-dialog OPTIONS: the dialog lives
            offer_refused(reoffers.judged(), control)
    conf.exchange_media(1.0)
    sent = conf.last_exchange_sent["alice"]
    evidence = kept_previous_keys(reoffers.judged(), alice, _others(conf, "alice"), sent, control)
    assert evidence.counts["packets received under the previous key"] >= 40


def test_a_secure_update_gets_a_fresh_key_that_carries_media(conf: ConferenceRun) -> None:
    alice, _ = _two(conf)
    reoffers = Reoffers(conf)
    evidence = reoffers.control("alice", method="UPDATE")
    offer = reoffers.control_offer
    assert offer is not None and offer.status == 200
    assert offer.answer_keys["audio"] not in offer.held_before  # fresh, not the old key
    assert alice.send_crypto["audio"] == offer.offered["audio"]
    assert evidence.counts["packets received under the new key"] >= 40


def test_a_rekey_round_after_a_reoffer_starts_from_the_new_session(conf: ConferenceRun) -> None:
    _two(conf)
    Reoffers(conf).control("alice")
    assert conf.join("carol", OfferSpec()).status == 200
    conf.exchange_media(1.0)  # carol's join rekeys alice from her renegotiated streams
    checks.hears_others(conf.participants.values())
    alice = conf.participant("alice")
    assert alice.rekeys[-1].epoch == 4  # admission, bob's join, the re-INVITE, carol's join


def test_an_update_without_a_body_is_a_target_refresh(conf: ConferenceRun) -> None:
    alice, _ = _two(conf)
    assert alice.dialog is not None
    response = conf.runtime.run(alice.dialog.request("UPDATE", timeout=5), 10)
    assert response.status == 200 and not response.body


def test_reoffers_that_change_the_shape_of_the_session(conf: ConferenceRun) -> None:
    alice, _ = _two(conf)
    sdp = parse_sdp(offer_sdp(alice, OfferSpec())[0])
    # An m-line added at the end is rejected with port 0; the others are answered.
    key = CryptoAttribute.generate(2, "AES_CM_128_HMAC_SHA1_80").to_value()
    video = MediaDescription.build("video", port=4000, formats=["96"], attributes=[("crypto", key)])
    added = sdp.with_media([*sdp.media, video])
    response = _send(conf, alice, "INVITE", added)
    assert response.status == 200
    answer = parse_sdp(response.body)
    assert [m.port != 0 for m in answer.media] == [True, False]
    # Dropping the audio line, or turning it into video, is refused and changes nothing.
    assert _send(conf, alice, "INVITE", sdp.with_media([])).status == 488
    video = MediaDescription.build("video", port=sdp.media[0].port, formats=["96"])
    assert _send(conf, alice, "UPDATE", sdp.with_media([video])).status == 488


def _send(conf: ConferenceRun, p: Participant, method: str, sdp: SessionDescription) -> Response:
    return conf.runtime.run(send_in_dialog(p, method, sdp.to_bytes(), 5), 10)


def test_an_offer_during_the_focus_s_own_reinvite_gets_491(conf: ConferenceRun) -> None:
    alice, _ = _two(conf)
    assert alice.dialog is not None
    held, release = asyncio.Event(), asyncio.Event()
    answer = dialog_handler(alice)

    async def holding(req) -> None:  # type: ignore[no-untyped-def]
        if req.method == "INVITE":
            held.set()
            await release.wait()
        await answer(req)

    alice.dialog.on_request = holding
    assert conf.join("carol", OfferSpec()).status == 200  # the focus re-INVITEs alice

    async def glare() -> int:
        await asyncio.wait_for(held.wait(), 5)
        try:
            sdp, _ = offer_sdp(alice, OfferSpec())
            return (await send_in_dialog(alice, "INVITE", sdp, 5)).status
        finally:
            release.set()

    assert conf.runtime.run(glare(), 15) == 491


def test_the_shape_rules_of_rfc_3264_section_8() -> None:
    audio = MediaDescription.build("audio", port=5000)
    video = MediaDescription.build("video", port=5002, formats=["96"])
    session = SessionDescription.build("focus", "127.0.0.1", media=[audio, video])
    same = SessionDescription.build("alice", "127.0.0.1", media=[audio, video])
    assert reoffer_refusal(session, same) is None
    more = same.with_media([audio, video, audio])
    assert reoffer_refusal(session, more) is None
    for bad in (
        same.with_media([audio]),
        same.with_media([video, audio]),
        same.with_media([audio, MediaDescription.build("video", port=0, formats=["96"])]),
    ):
        refusal = reoffer_refusal(session, bad)
        assert refusal is not None and refusal.status == 488


# -- the defect switch -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defective(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedReference]:
    ref = EmbeddedReference.start(
        tmp_path_factory.mktemp("ref-reoffer-defect"),
        defects=frozenset({"reoffer-policy-not-applied"}),
    )
    yield ref
    ref.stop()


@pytest.fixture
def defective_conf(defective: EmbeddedReference, tmp_path: Path) -> Iterator[ConferenceRun]:
    loop = LoopThread("test-reoffer-defect")
    run = ConferenceRun(loop, defective.target, keylog=tmp_path / "keylog.txt")
    yield run
    run.close()
    loop.close()


@pytest.mark.parametrize("what", BAD_OFFERS)
def test_the_defect_switches_the_leg_and_both_checks_see_it(
    defective_conf: ConferenceRun, what: str
) -> None:
    conf = defective_conf
    alice, _ = _two(conf)
    reoffers = Reoffers(conf)
    control = reoffers.control("alice")  # a legitimate re-INVITE still works
    offer = reoffers.offer("alice", "re-INVITE", what)
    assert offer.status == 200
    with pytest.raises(NonConformance, match="was accepted"):
        offer_refused(reoffers.judged(), control)
    # The media check finds it on its own: alice gets unprotected media and bob cannot hear
    # her SRTP, which the mixer now takes for plain RTP.
    conf.exchange_media(1.0)
    sent = conf.last_exchange_sent["alice"]
    with pytest.raises(NonConformance, match="do not open under the key the focus sent"):
        kept_previous_keys(reoffers.judged(), alice, _others(conf, "alice"), sent, control)
