"""The signalling robustness probes of confsec/behaviour/malformed.py: each crafted request and
offer is broken in exactly the way its name says (checked with the suite's own codecs), and the
checks judge hand-made observations as the feature expects."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from confsec.behaviour import malformed as mf
from confsec.behaviour.conference import CallOutcome
from confsec.behaviour.participant import MediaStats
from confsec.codec.sdp import (
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.codec.sip import Request, SipParseError, SipStream
from confsec.errors import Inconclusive, NonConformance

CTX = mf.RequestContext("sips:conf-1@conference.example.test", "sips:carol@conference.example.test")


def _frame(data: bytes) -> Request | None:
    stream = SipStream()
    stream.feed(data)
    msg = stream.next_message()
    assert msg is None or isinstance(msg, Request)
    return msg


# -- crafting: requests ------------------------------------------------------------------------


def test_the_base_invite_is_well_formed() -> None:
    """The flaws are added to a request the codec takes: each kind breaks one thing only."""
    msg = _frame(mf._lines(*mf._invite(CTX), "Content-Length: 0", ""))
    assert msg is not None and msg.method == "INVITE" and msg.uri == CTX.request_uri
    for name in ("Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact"):
        assert msg.headers.get(name), name
    assert msg.from_.uri == CTX.from_uri


@pytest.mark.parametrize(
    ("kind", "reason", "hint"),
    [
        ("a request line that is not SIP", "Request-URI", 400),
        ("an INVITE with a negative Content-Length", "Content-Length", 400),
        ("an INVITE with NUL bytes in a header line", "header name", 400),
        ("an INVITE with a 100 KB header value", "larger than|longer than", 513),
        (f"an INVITE with {mf.MANY_HEADERS} header fields", "header fields", 513),
    ],
)
def test_unparseable_kinds_break_the_framing(kind: str, reason: str, hint: int) -> None:
    with pytest.raises(SipParseError, match=reason) as info:
        _frame(mf.craft_request(kind, CTX))
    assert info.value.status_hint == hint


def test_a_request_without_call_id_parses_but_lacks_it() -> None:
    msg = _frame(mf.craft_request("an INVITE without Call-ID", CTX))
    assert msg is not None and msg.headers.get("Call-ID") is None
    assert msg.headers.get("CSeq") == "1 INVITE"


def test_a_content_length_beyond_the_body_leaves_the_message_incomplete() -> None:
    data = mf.craft_request("an INVITE with a Content-Length larger than its body", CTX)
    assert b"Content-Length: 4096\r\n" in data and len(data.split(b"\r\n\r\n", 1)[1]) < 4096
    assert _frame(data) is None  # a stream waits for the rest


def test_oversized_kinds_are_oversized() -> None:
    assert len(mf.craft_request("an INVITE with a 100 KB header value", CTX)) > 100 * 1024
    data = mf.craft_request(f"an INVITE with {mf.MANY_HEADERS} header fields", CTX)
    assert data.count(b"X-Robustness-") == mf.MANY_HEADERS


def test_unknown_kinds_are_a_suite_error() -> None:
    with pytest.raises(ValueError, match="unknown malformed request"):
        mf.craft_request("a friendly request", CTX)
    with pytest.raises(ValueError, match="unknown offer"):
        mf.craft_offer("a friendly offer")


# -- crafting: offers --------------------------------------------------------------------------


def _audio(kind: str) -> MediaDescription:
    offer = parse_sdp(mf.craft_offer(kind))
    assert [m.media for m in offer.media] == ["audio"]
    return offer.media[0]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("an a=crypto key that is not base64", "not base64"),
        ("an a=crypto key of the wrong length for its suite", "needs 30 bytes"),
        ("a body cut short inside the a=crypto line", "needs 30 bytes"),
    ],
)
def test_bad_keys_parse_as_sdp_but_not_as_crypto(kind: str, reason: str) -> None:
    m = _audio(kind)
    assert m.proto == "RTP/SAVP" and m.port == 9
    with pytest.raises(SdpParseError, match=reason):
        m.crypto  # noqa: B018


def test_a_body_cut_short_ends_inside_the_key() -> None:
    body = mf.craft_offer("a body cut short inside the a=crypto line")
    assert not body.endswith(b"\r\n") and b"a=sendrecv" not in body


def test_an_m_line_without_a_port_is_not_sdp() -> None:
    body = mf.craft_offer("an m= line without a port")
    assert b"\r\nm=audio RTP/SAVP 0\r\n" in body
    with pytest.raises(SdpParseError):
        parse_sdp(body)


def test_unknown_suite_offers() -> None:
    only = _audio(f"only the unknown crypto suite {mf.UNKNOWN_SUITE}").crypto
    assert [(c.tag, c.suite, c.is_known) for c in only] == [(1, mf.UNKNOWN_SUITE, False)]
    both = _audio(f"{mf.UNKNOWN_SUITE} first and {mf.SUPPORTED_SUITE} second").crypto
    assert [(c.tag, c.suite) for c in both] == [
        (1, mf.UNKNOWN_SUITE),
        (mf.UNKNOWN_FIRST_TAG, mf.SUPPORTED_SUITE),
    ]
    assert both[1].is_known and not both[1].is_null


def test_offers_carry_fresh_keys() -> None:
    kind = f"{mf.UNKNOWN_SUITE} first and {mf.SUPPORTED_SUITE} second"
    assert _audio(kind).crypto[1].key != _audio(kind).crypto[1].key


# -- malformed_not_accepted ------------------------------------------------------------------


def _probe(**kw: object) -> mf.RawProbe:
    return mf.RawProbe("an INVITE without Call-ID", sent_bytes=300, window=8.0, **kw)  # type: ignore[arg-type]


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
    out = _answered([CryptoAttribute.generate(2, mf.SUPPORTED_SUITE)])
    mf.admitted_with_offered_suite(out, "carol")


@pytest.mark.parametrize(
    "crypto",
    [
        CryptoAttribute.generate(1, mf.SUPPORTED_SUITE),  # the tag of the unknown suite
        CryptoAttribute(2, mf.UNKNOWN_SUITE, secrets.token_bytes(30), b"", unchecked=True),
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
