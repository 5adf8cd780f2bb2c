"""baresip participants on the reference: SIP over mutual TLS, mandatory SRTP (SDES).

What confsec concludes about baresip 1.0 (Debian 12), pinned here:

1. Against the reference as it ships (SHA-256 digest only, RFC 8760) baresip cannot join: it
   completes mutual TLS and sends an RTP/SAVP offer with a=crypto, then gives up on the
   SHA-256 challenge ("Function not implemented": its SIP stack does MD5 digest only).
2. With the reference's digest switched to MD5 for this test, baresip is admitted to a
   conference the suite created with SRTP negotiated (AES_CM_128_HMAC_SHA1_80), but it cannot
   send the ACK: the focus's Contact is a SIPS URI and libre, baresip's SIP stack, refuses any
   next hop that is not `sip:` (ENOSYS). So no baresip participant stays in a SIPS conference.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun, OfferSpec
from confsec.behaviour.runtime import LoopThread
from confsec.codec.digest import DigestServer
from confsec.reference.deployment import EmbeddedReference
from tests.thirdparty.baresip import Baresip, need_baresip


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread("baresip-test")
    yield lt
    lt.close()


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[EmbeddedReference]:
    need_baresip()
    ref = EmbeddedReference.start(tmp_path / "ref")
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


def test_baresip_negotiates_srtp_but_cannot_ack_a_sips_contact(
    tmp_path: Path, reference: EmbeddedReference, loop: LoopThread
) -> None:
    """With MD5 digest allowed, baresip joins over mutual TLS and SRTP, then drops the call.

    The focus admits it with SRTP keys on the mixer leg and baresip turns SRTP on (its
    `srtp-mand` is satisfied), but the 200 OK's Contact is a SIPS URI, as RFC 3261 12.1.1
    demands for a SIPS request, and baresip 1.0's SIP stack (libre `sip_request`) sends only
    to `sip:` next hops: it closes the session with ENOSYS before sending the ACK.
    """
    dep = reference.deployment
    users = {u: a.password for u, a in reference.target.accounts.items()}
    dep.focus.digest = DigestServer(realm=dep.config.domain, users=users, algorithm="MD5")
    conf = ConferenceRun(loop, reference.target, keylog=tmp_path / "keylog.txt")
    ua = None
    try:
        assert conf.create("alice", OfferSpec()).status == 200
        assert conf.conference_uri is not None
        conf_id = conf.conference_uri.split(":")[1].split("@")[0]
        ua = Baresip(tmp_path, "bob", reference.target)
        ua.dial(conf.conference_uri)
        assert ua.wait_for("session closed: Function not implemented", 15), ua.log[-3000:]
        log = ua.log
        assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in log
        assert "mediaenc event 'Secure'" in log or "SRTP is Enabled" in log
        assert ";isfocus" in log and "Contact: <sips:" in log
        assert "\nACK sips:conf-" not in log.split("SIP/2.0 200 OK")[-1]  # no ACK for the 200
        users_admitted = [leg.user for leg in dep.focus.conferences[conf_id].legs.values()]
        assert "bob" in users_admitted  # the focus admitted it, with SRTP on the mixer leg
        bob_legs = [
            streams
            for leg_id, streams in dep.mixer._conferences[conf_id].legs.items()
            if "/bob/" in leg_id
        ]
        assert bob_legs and all(s["audio"].rx is not None for s in bob_legs)
    finally:
        if ua is not None:
            ua.close()
        conf.close()
