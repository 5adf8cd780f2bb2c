"""Every pass is earned: checks judged on hand-built input that must not be enough to pass.

A check that observed nothing is inconclusive, a negative check needs its positive control, and
a stricter (more secure) target is not failed.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from confsec.behaviour import checks, group_keys, rekeying
from confsec.behaviour.outcomes import CallOutcome, TlsProbe
from confsec.codec.sdp import CryptoAttribute, MediaDescription, SessionDescription
from confsec.errors import Inconclusive, NonConformance
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_receiver, new_sender
from confsec.observed import Evidence
from confsec.report.verdicts import Verdict, classify

SUITE = "AES_CM_128_HMAC_SHA1_80"


def _key() -> tuple[bytes, bytes]:
    return os.urandom(16), os.urandom(14)


def _answered(*cryptos: CryptoAttribute, status: int = 200) -> CallOutcome:
    attrs = [("crypto", c.to_value()) for c in cryptos]
    m = MediaDescription.build(
        "audio", port=40000, proto="RTP/SAVP", formats=["0"], attributes=attrs
    )
    out = CallOutcome("alice", "sips:conf-factory@conference.example.test", status=status)
    out.answer = SessionDescription.build("focus", "127.0.0.1", media=[m])
    return out


# -- the verdict layer -------------------------------------------------------------------------


def test_only_nonconformance_is_a_fail() -> None:
    assert classify(NonConformance("finding")) is Verdict.FAIL
    assert classify(AssertionError("a bare assert in suite code")) is Verdict.ERROR


def test_evidence_is_empty_without_a_positive_count() -> None:
    assert not Evidence()
    assert not Evidence.of("a control alone", shared_key_streams=0)
    seen = Evidence.of(streams=4, packets=312, shared_key_streams=0)
    assert seen and seen.summary() == "4 streams, 312 packets, 0 shared key streams"
    assert (seen + Evidence.of("bob admitted", packets=8)).counts["packets"] == 320


# -- 1. R2 mutual TLS ---------------------------------------------------------------------------


def _refused() -> TlsProbe:
    return TlsProbe(handshake_ok=True, closed_by_peer=True)


def _answered_control() -> TlsProbe:
    return TlsProbe(handshake_ok=True, response_status=200)


def test_mutual_tls_refusal_needs_the_control() -> None:
    with pytest.raises(Inconclusive, match="no control"):
        checks.tls_refused(_refused(), None)
    with pytest.raises(Inconclusive, match="control failed"):
        checks.tls_refused(_refused(), TlsProbe(handshake_ok=True, closed_by_peer=True))
    ev = checks.tls_refused(_refused(), _answered_control())
    assert ev and any("answered 200" in c for c in ev.controls)


def test_a_server_certificate_the_suite_rejected_is_no_refusal() -> None:
    rejected = TlsProbe(tls_error="certificate has expired", cert_rejected=True)
    with pytest.raises(Inconclusive, match="suite rejected the service's certificate"):
        checks.tls_refused(rejected, _answered_control())


# -- 2. R4 --------------------------------------------------------------------------------------


def test_no_reuse_needs_the_targets_key_streams_seen_on_the_wire() -> None:
    ledger = KeyStreamLedger()
    for owner in ("alice", "bob"):
        new_receiver(ledger, StreamId(owner, "focus", "audio", "recv"), SUITE, *_key())
    with pytest.raises(Inconclusive, match="no key stream of the target on the wire"):
        checks.no_key_stream_reuse(ledger, "participants")  # keys, but no packets at all
    for owner, ssrc in (("alice", 1), ("bob", 2)):  # our own packets do not count
        tx = new_sender(ledger, StreamId(owner, "focus", "audio", "send"), SUITE, *_key())
        tx.protect(build_rtp(0, 1, 160, ssrc, b"\xff" * 160))
    with pytest.raises(Inconclusive, match="no key stream of the target on the wire"):
        checks.no_key_stream_reuse(ledger, "participants")


def test_ledger_findings_that_do_not_fail_r4_are_reported() -> None:
    ledger = KeyStreamLedger()
    key = _key()
    for owner, ssrc in (("alice", 1), ("bob", 2)):
        tx = new_sender(ledger, StreamId("focus", owner, "audio", "send"), SUITE, *key)
        rx = new_receiver(ledger, StreamId(owner, "focus", "audio", "recv"), SUITE, *key)
        rx.unprotect(tx.protect(build_rtp(0, 1, 160, ssrc, b"\xff" * 160)))
    ev = checks.no_key_stream_reuse(ledger, "participants")  # distinct SSRCs: no two-time pad
    assert ev.counts["target streams"] == 2
    notes = checks.ledger_observations(ledger)
    assert any(n.startswith("key-shared-different-ssrc") for n in notes), notes


# -- 3. R3 unprotected media ---------------------------------------------------------------------


def _person(name: str, hz: float, hears: set[float]) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        tone_hz=hz,
        heard_tones=lambda cands: {f for f in cands if f in hears},
        other_tones=lambda: [f for f in (440.0, 660.0, 880.0) if f != hz],
    )


def test_unprotected_media_check_needs_packets_sent_and_the_control() -> None:
    alice = _person("alice", 440.0, {660.0})
    carol = _person("carol", 880.0, set())
    with pytest.raises(Inconclusive, match="carol sent no packets"):
        checks.does_not_hear(alice, carol, sent=0)  # type: ignore[arg-type]
    assert checks.does_not_hear(alice, carol, sent=50)  # type: ignore[arg-type]
    # The control: a mixer that mixes no one does not hear carol over SRTP either.
    with pytest.raises(Inconclusive, match="control failed"):
        checks.heard_by_all(carol, [alice])  # type: ignore[arg-type]
    assert checks.heard_by_all(carol, [_person("bob", 660.0, {880.0})]).controls  # type: ignore[arg-type]


# -- 4. R3 "with <suite>" -------------------------------------------------------------------------


def test_the_answer_must_select_the_offered_suite() -> None:
    aes = CryptoAttribute.generate(1, SUITE)
    with pytest.raises(NonConformance, match="offered only AEAD_AES_128_GCM"):
        checks.suite_selected(_answered(aes), "AEAD_AES_128_GCM")
    assert checks.suite_selected(_answered(aes), SUITE)


# -- 7. R6 freshness ------------------------------------------------------------------------------


def test_freshness_needs_a_rekey() -> None:
    ledger = KeyStreamLedger()
    for owner in ("alice", "bob"):
        new_receiver(ledger, StreamId(owner, "focus", "audio", "recv"), SUITE, *_key())
    with pytest.raises(Inconclusive, match="no rekey happened"):
        rekeying.keys_fresh(ledger)
    new_receiver(ledger, StreamId("alice", "focus", "audio", "recv", "epoch-2"), SUITE, *_key())
    assert rekeying.keys_fresh(ledger).counts["rekeyed keys"] == 1


# -- 11. R3 UNENCRYPTED_SRTP ----------------------------------------------------------------------


def test_an_answer_that_drops_unencrypted_srtp_and_encrypts_is_compliant() -> None:
    full = CryptoAttribute.generate(1, SUITE)
    assert checks.null_cipher_not_admitted(_answered(full), "alice", "UNENCRYPTED_SRTP")
    kept = CryptoAttribute(1, SUITE, *_key(), session_params=("UNENCRYPTED_SRTP",))
    with pytest.raises(NonConformance, match="without encryption"):
        checks.null_cipher_not_admitted(_answered(kept), "alice", "UNENCRYPTED_SRTP")
    with pytest.raises(NonConformance, match="only suite does not encrypt"):
        checks.null_cipher_not_admitted(_answered(full), "alice", "NULL_HMAC_SHA1_80")
    assert checks.null_cipher_not_admitted(_answered(status=488), "alice", "NULL_HMAC_SHA1_80")


# -- 12. O1 probes --------------------------------------------------------------------------------


def test_o1_verdicts_do_not_depend_on_the_tls_version() -> None:
    # TLS 1.2: the interface refuses our certificate with an alert inside the handshake.
    tls12 = {"key channel": TlsProbe(alert="TLSV13_ALERT_CERTIFICATE_REQUIRED", tls_error="x")}
    # TLS 1.3: the handshake completes, the refusal is a close right after it.
    tls13 = {"key channel": TlsProbe(handshake_ok=True, closed_by_peer=True)}
    for probes in (tls12, tls13):
        assert checks.interfaces_protected(probes)
        assert checks.interfaces_refuse(probes, "a participant's certificate")
    accepted = {"key channel": TlsProbe(handshake_ok=True)}
    with pytest.raises(NonConformance, match="accepted a TLS client"):
        checks.interfaces_refuse(accepted, "a participant's certificate")
    plain = {"key channel": TlsProbe(tls_error="no TLS handshake (wrong version number)")}
    with pytest.raises(NonConformance, match="does not complete TLS"):
        checks.interfaces_protected(plain)
    with pytest.raises(Inconclusive, match="before its certificate could be verified"):
        checks.interfaces_refuse(plain, "no certificate")


def test_an_unreadable_identity_is_not_a_close() -> None:
    probe = TlsProbe(handshake_ok=True, identity_error="session gone")
    assert not probe.closed_by_peer
    with pytest.raises(NonConformance, match="accepted a TLS client"):
        checks.interfaces_refuse({"key channel": probe}, "no certificate")


# -- 13. R5 without media -------------------------------------------------------------------------


def test_a_silent_common_stream_is_inconclusive_not_a_fail() -> None:
    leg = SimpleNamespace(
        remote=("127.0.0.1", 1), stats=SimpleNamespace(received=0, authenticated=0)
    )
    p = SimpleNamespace(name="alice", tone_hz=440.0, legs={"common": leg})
    with pytest.raises(Inconclusive, match="received nothing on the common stream"):
        group_keys.common_stream_decrypted([p])  # type: ignore[list-item]


# -- 10. O7 ---------------------------------------------------------------------------------------


def test_refusing_a_spoofed_from_is_compliant() -> None:
    from confsec.behaviour import event_checks

    refused = CallOutcome("mallory", "sips:conf-1@conference.example.test", status=403)
    ev = event_checks.spoofed_join_settled(refused, "mallory", "alice")
    assert ev.counts["refusals"] == 1
    admitted = _answered(CryptoAttribute.generate(1, SUITE))
    assert event_checks.spoofed_join_settled(admitted, "mallory", "alice")
    with pytest.raises(Inconclusive, match="no final answer"):
        event_checks.spoofed_join_settled(
            CallOutcome("mallory", "x", error="timeout"), "mallory", "a"
        )
