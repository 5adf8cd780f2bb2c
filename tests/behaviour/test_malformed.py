"""The signalling robustness checks of confsec/behaviour/malformed.py judge hand-made
observations as the features expect (what the probes send is tested in test_crafted.py)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from confsec.behaviour import malformed as mf
from confsec.behaviour.crafted import SUPPORTED_SUITE, MissingHeader
from confsec.behaviour.outcomes import CallOutcome
from confsec.behaviour.participant import MediaStats
from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SessionDescription,
)
from confsec.errors import Inconclusive, NonConformance

# -- malformed_not_accepted ------------------------------------------------------------------


def _probe(**kw: object) -> mf.RawProbe:
    return mf.RawProbe(MissingHeader("Call-ID"), sent_bytes=300, window=8.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "probe",
    [
        _probe(responses=[(400, "Missing Call-ID")]),
        _probe(responses=[(100, "Trying"), (494, "Security Agreement Required")]),
        _probe(responses=[(513, "Message Too Large")]),
        _probe(closed_by_peer=True, waited=0.01),
        _probe(waited=8.0),  # silence, connection open: discarded, which is allowed
    ],
)
def test_clean_refusals_pass(probe: mf.RawProbe) -> None:
    mf.malformed_not_accepted(probe)


def test_an_accepted_malformed_request_fails() -> None:
    with pytest.raises(NonConformance, match="accepted an INVITE without Call-ID from carol"):
        mf.malformed_not_accepted(_probe(responses=[(100, "Trying"), (200, "OK")]))


def test_a_2xx_before_the_close_still_fails() -> None:
    with pytest.raises(NonConformance, match="200 OK"):
        mf.malformed_not_accepted(_probe(responses=[(200, "OK")], closed_by_peer=True))


@pytest.mark.parametrize(
    ("probe", "reason"),
    [
        (None, "no malformed request was sent"),
        (_probe(connect_error="TLS handshake failed"), "could not open her own TLS connection"),
        (_probe(responses=[(500, "Server Internal Error")]), "cannot tell a clean refusal"),
        (_probe(responses=[(302, "Moved")]), "cannot tell a clean refusal"),
        (_probe(unparseable=1), "bytes that are not SIP"),
    ],
)
def test_what_cannot_be_judged_is_inconclusive(probe: mf.RawProbe | None, reason: str) -> None:
    with pytest.raises(Inconclusive, match=reason):
        mf.malformed_not_accepted(probe)


def test_outcome_phrases_say_what_happened() -> None:
    assert "discarded" in _probe(waited=8.0).outcome
    assert _probe(closed_by_peer=True, waited=0.5).outcome.startswith("connection closed")
    assert _probe(responses=[(400, "Bad")], waited=0.1).outcome.startswith("answered 400 Bad")
    assert _probe(connect_error="refused").outcome == "not sent: refused"


def test_measurements() -> None:
    silent = mf.measurements(_probe(waited=8.0))
    assert silent["status"] == 0.0 and silent["silent_window_s"] == 8.0
    closed = mf.measurements(_probe(closed_by_peer=True, waited=0.002))
    assert closed["closed_by_peer"] == 1.0 and closed["silent_window_s"] == 0.0
    assert mf.measurements(_probe(responses=[(400, "Bad")]))["status"] == 400.0


# -- conference_went_on ----------------------------------------------------------------------


@dataclass
class Listener:
    """What the check reads of a participant: received packets and the tones heard."""

    name: str
    tone_hz: float
    received: int = 50
    authenticated: int = 50
    heard: set[float] = field(default_factory=set)

    def receive_stats(self) -> dict[str, MediaStats]:
        failed = self.received - self.authenticated
        return {"audio": MediaStats(self.received, self.authenticated, failed, 0, 0)}

    def heard_tones(self, candidates: list[float]) -> set[float]:
        return self.heard & set(candidates)


def _pair(**bob: object) -> list[Listener]:
    alice = Listener("alice", 440.0, heard={660.0})
    return [alice, Listener("bob", 660.0, **{"heard": {440.0}, **bob})]  # type: ignore[arg-type]


def _had(received: int, authenticated: int) -> MediaStats:
    return MediaStats(received, authenticated, received - authenticated, 0, 0)


BEFORE = {"alice": _had(0, 0), "bob": _had(0, 0)}


def test_a_conference_that_goes_on_passes() -> None:
    mf.conference_went_on(_pair(), "carol sent an INVITE without Call-ID", True, BEFORE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bob", "reason"),
    [
        ({"received": 0, "authenticated": 0, "heard": set()}, "bob received no media at all"),
        ({"heard": set()}, "bob does not hear alice"),
        (
            {"authenticated": 40},
            "10 of the 50 packets bob received did not authenticate"
            r" under the negotiated key \(10 failed authentication\)",
        ),
    ],
)
def test_a_conference_that_stopped_fails(bob: dict[str, object], reason: str) -> None:
    with pytest.raises(NonConformance, match=f"after carol sent x, the conference .*{reason}"):
        mf.conference_went_on(_pair(**bob), "carol sent x", True, BEFORE)  # type: ignore[arg-type]


def test_only_packets_after_the_probe_count() -> None:
    """50 packets before the probe and none after: the conference stopped."""
    before = {"alice": _had(0, 0), "bob": _had(50, 50)}
    with pytest.raises(NonConformance, match="bob received no media at all"):
        mf.conference_went_on(_pair(), "carol sent x", True, before)  # type: ignore[arg-type]


def test_without_a_baseline_a_silent_conference_is_inconclusive_not_a_fail() -> None:
    silent = {"received": 0, "authenticated": 0, "heard": set()}
    with pytest.raises(Inconclusive, match="no baseline"):
        mf.conference_went_on(_pair(**silent), "carol sent x", False, BEFORE)  # type: ignore[arg-type]


def test_a_conference_of_one_cannot_be_judged() -> None:
    with pytest.raises(Inconclusive, match="fewer than two"):
        mf.conference_went_on(_pair()[:1], "carol sent x", True, BEFORE)  # type: ignore[arg-type]


# -- admitted_with_offered_suite ------------------------------------------------------------


def _answered(cryptos: list[CryptoAttribute], port: int = 40000) -> CallOutcome:
    attrs = [("crypto", c.to_value()) for c in cryptos]
    m = MediaDescription.build(
        "audio", port=port, proto="RTP/SAVP", formats=["0"], attributes=attrs
    )
    out = CallOutcome("carol", "sips:conf-1@conference.example.test", status=200, reason="OK")
    out.answer = SessionDescription.build("focus", "127.0.0.1", media=[m])
    return out


def test_the_supported_suite_with_its_tag_passes() -> None:
    out = _answered([CryptoAttribute.generate(2, SUPPORTED_SUITE)])
    mf.admitted_with_offered_suite(out, "carol")


@pytest.mark.parametrize(
    "crypto",
    [
        CryptoAttribute.generate(1, SUPPORTED_SUITE),  # the tag of the unknown suite
        CryptoAttribute(2, "AES_999_CM_HMAC_SHA9_80", secrets.token_bytes(30), b"", unchecked=True),
        CryptoAttribute.generate(2, "AES_CM_128_HMAC_SHA1_32"),
    ],
)
def test_another_selection_fails(crypto: CryptoAttribute) -> None:
    with pytest.raises(NonConformance, match="selects tag"):
        mf.admitted_with_offered_suite(_answered([crypto]), "carol")


def test_a_rejected_stream_fails_and_no_answer_is_inconclusive() -> None:
    with pytest.raises(NonConformance, match="rejects the audio stream"):
        mf.admitted_with_offered_suite(_answered([], port=0), "carol")
    with pytest.raises(Inconclusive, match="no SDP answer"):
        mf.admitted_with_offered_suite(CallOutcome("carol", "sips:x@y"), "carol")
