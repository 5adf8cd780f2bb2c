"""baresip participants on the reference: SIP over mutual TLS, mandatory SRTP (SDES).

What confsec concludes about baresip 1.0 (Debian 12, libre 1.1), pinned here:

1. Against the reference as it ships (SIPS only, SHA-256 digest only, RFC 8760) baresip cannot
   join: it completes mutual TLS and sends an RTP/SAVP offer with a=crypto, then gives up on the
   SHA-256 challenge ("Function not implemented": its SIP stack does MD5 digest only).
2. Offering MD5 beside SHA-256 (interop "digest-md5", as RFC 8760 §2.4 allows) does not help:
   libre fails the whole 401 when any challenge in it is not MD5. Only an MD5-only challenge
   ("digest-md5-only") gets it admitted.
3. Admitted, it still cannot ACK the 200 OK: the focus's Contact is a SIPS URI (RFC 3261 12.1.1,
   for a SIPS request) and libre sends only to `sip:` next hops. With "sip-over-tls" it dials a
   `sip:` conference URI over TLS, gets a `sip:...;transport=tls` Contact, and stays.
4. With both relaxations two baresip instances join one conference a confsec participant created,
   SRTP (AES_CM_128_HMAC_SHA1_80) flows both ways and the mixer authenticates every packet; a
   plain-RTP offer is still refused. But baresip 1.0 does not take a new SDES key from a
   re-INVITE: after the focus rekeys (R6, a later join) it can no longer decrypt what the mixer
   sends, and it answers the re-INVITE with its old sending key (the mixer's key-stream ledger
   shows the same key and SSRC in two epochs). The test lets both baresip joins fall in one
   rekey batch (a wider batching window) so that neither is re-keyed before the media check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec
from confsec.reference.deployment import EmbeddedReference
from confsec.reference.rekey import DEFAULT_WINDOW_S
from confsec.runtime.loop import LoopThread
from tests.thirdparty.baresip import INTEROP, Baresip, conference_id, need_baresip, wait_until


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread("baresip-test")
    yield lt
    lt.close()


def _reference(tmp_path: Path, interop: frozenset[str] = frozenset()) -> EmbeddedReference:
    need_baresip()
    return EmbeddedReference.start(tmp_path / "ref", interop=interop)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[EmbeddedReference]:
    ref = _reference(tmp_path)
    yield ref
    ref.stop()


def test_baresip_cannot_answer_a_sha256_digest_challenge(
    tmp_path: Path, reference: EmbeddedReference
) -> None:
    ua = Baresip(tmp_path, "bob", reference.target)
    try:
        ua.dial(reference.target.factory_uri)
        assert ua.wait_for("Function not implemented", 10), ua.log[-3000:]
    finally:
        ua.close()
    log = ua.log
    assert "m=audio" in log and "RTP/SAVP" in log and "a=crypto:" in log  # SRTP offered
    assert "algorithm=SHA-256" in log  # the challenge it could not answer
    assert "Authorization:" not in log
    assert reference.deployment.focus.conferences == {}


def test_baresip_gives_up_even_when_md5_is_offered_beside_sha256(tmp_path: Path) -> None:
    """RFC 8760 §2.4: SHA-256 and MD5 challenges in one 401; libre refuses the whole 401."""
    ref = _reference(tmp_path, frozenset({"digest-md5", "sip-over-tls"}))
    ua = None
    try:
        ua = Baresip(tmp_path, "bob", ref.target)
        ua.dial(f"sip:conf-factory@{ref.target.domain}")
        assert ua.wait_for("Function not implemented", 10), ua.log[-3000:]
        log = ua.log
        assert "algorithm=SHA-256" in log and "algorithm=MD5" in log
        assert "Authorization:" not in log
        assert ref.deployment.focus.conferences == {}
    finally:
        if ua is not None:
            ua.close()
        ref.stop()


def test_baresip_cannot_ack_a_sips_contact(tmp_path: Path, loop: LoopThread) -> None:
    """With only MD5 digest relaxed, baresip is admitted with SRTP, then drops the call.

    The 200 OK's Contact is a SIPS URI, as RFC 3261 12.1.1 demands for a SIPS request, and
    baresip 1.0's SIP stack (libre `sip_request`) sends only to `sip:` next hops: it closes the
    session with ENOSYS before sending the ACK.
    """
    ref = _reference(tmp_path, frozenset({"digest-md5-only"}))
    dep = ref.deployment
    conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
    ua = None
    try:
        assert conf.create("alice", OfferSpec()).status == 200
        assert conf.conference_uri is not None
        conf_id = conference_id(conf.conference_uri)
        ua = Baresip(tmp_path, "bob", ref.target)
        ua.dial(conf.conference_uri)
        assert ua.wait_for("session closed: Function not implemented", 15), ua.log[-3000:]
        log = ua.log
        assert "algorithm=MD5" in log and "algorithm=SHA-256" not in log
        assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in log
        assert ";isfocus" in log and "Contact: <sips:" in log
        assert "\nACK sips:conf-" not in log.split("SIP/2.0 200 OK")[-1]  # no ACK for the 200
        users_admitted = [leg.user for leg in dep.focus.conferences[conf_id].legs.values()]
        assert "bob" in users_admitted  # the focus admitted it, with SRTP on the mixer leg
    finally:
        if ua is not None:
            ua.close()
        conf.close()
        ref.stop()


def test_two_baresip_participants_join_with_srtp_under_the_interop_profile(
    tmp_path: Path, loop: LoopThread
) -> None:
    ref = _reference(tmp_path, INTEROP)
    dep = ref.deployment
    # Both baresip joins in one rekey batch, so that neither gets a rekey re-INVITE before the
    # media check (baresip 1.0 cannot apply one, see the end of this test).
    dep.focus.rekey.window = 3.0
    conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
    uas: dict[str, Baresip] = {}
    try:
        assert conf.create("alice", OfferSpec()).status == 200
        assert conf.conference_uri is not None
        conf_id = conference_id(conf.conference_uri)
        for name, tone_hz in (("bob", 440), ("carol", 660)):
            uas[name] = Baresip(tmp_path, name, ref.target, tone_hz=tone_hz)
        for ua in uas.values():  # a sip: URI over TLS (sip-over-tls), to the outbound proxy
            ua.dial(f"sip:{conf_id}@{ref.target.domain}")
        for name, ua in uas.items():
            assert ua.wait_for("Call established", 10), f"{name}:\n{ua.log[-3000:]}"
            log = ua.log
            assert "algorithm=MD5" in log and "Authorization: Digest" in log
            assert "Contact: <sip:conf-" in log and ";transport=tls>;isfocus" in log
            assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in log
            assert "\nACK sip:conf-" in log

        legs = dep.mixer._conferences[conf_id].legs

        def streams(user: str) -> list:
            return [s["audio"] for leg_id, s in legs.items() if f"/{user}/" in leg_id]

        # baresip -> mixer: SRTP the mixer authenticates; mixer -> baresip: SRTP baresip decrypts.
        assert wait_until(lambda: all(ua.rx_bitrate() > 0 for ua in uas.values()), 8)
        assert wait_until(lambda: all(s.rx.ok >= 50 for u in uas for s in streams(u)), 8)
        for name, ua in uas.items():
            (stream,) = streams(name)
            assert stream.rx.auth_failed == 0 and stream.secure_rx and stream.secure_tx
            assert stream.tx is not None and stream.tx.packets > 0
            assert "failed to decrypt" not in ua.log, f"{name}:\n{ua.log[-2000:]}"
        assert dep.mixer.stats.auth_failed == 0 and dep.mixer.stats.plain_mixed == 0
        rows = {str(r.stream): r for r in dep.mixer.ledger.entries()}
        for name in uas:
            recv = [r for k, r in rows.items() if f"/{name}/" in k and r.stream.direction == "recv"]
            assert recv and recv[0].suite == "AES_CM_128_HMAC_SHA1_80" and recv[0].packets_seen
        assert dep.mixer.ledger.findings() == []

        # Plain RTP is still refused, interop profile or not.
        assert conf.join("dave", OfferSpec(secure=False)).status == 488
        assert {leg.user for leg in dep.focus.conferences[conf_id].legs.values()} == {
            "alice",
            "bob",
            "carol",
        }

        # A later join rekeys every member (R6). baresip 1.0 answers the re-INVITE with its old
        # sending key and keeps its old receiving key, so it can no longer decrypt.
        assert wait_until(lambda: len(dep.focus.rekey.rounds) >= 1, 6)  # the batch's own round
        dep.focus.rekey.window = DEFAULT_WINDOW_S
        assert conf.join("erin", OfferSpec()).status == 200
        for name, ua in uas.items():
            assert ua.wait_for("got re-INVITE", 10), f"{name}:\n{ua.log[-2000:]}"
            assert ua.wait_for("failed to decrypt RTP packet", 10), f"{name}:\n{ua.log[-2000:]}"
        reused = {s.peer.split("/")[1] for f in dep.mixer.ledger.findings() for s in f.streams}
        assert reused == set(uas)

        # The re-INVITEs kept the sip: Contact, so baresip's BYE still reaches the focus.
        assert all(
            "Contact: <sips:" not in ua.log.split("Call established")[1] for ua in uas.values()
        )
        uas["bob"].command("hangup")
        members = dep.focus.conferences[conf_id].legs.values
        assert wait_until(lambda: "bob" not in {leg.user for leg in members()}, 5)
        assert "\nBYE sip:conf-" in uas["bob"].log
    finally:
        for ua in uas.values():
            ua.close()
        conf.close()
        ref.stop()
