"""The typed inputs of the signalling robustness probes (confsec/behaviour/crafted.py): every
cell the features use parses to the value it names, a cell outside the grammar fails with the
accepted forms, other parameters within the grammar work, and each value crafts bytes broken in
exactly the way its form says (checked with the suite's own codecs)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from pytest_bdd.feature import get_features

from confsec.behaviour import crafted as cr
from confsec.codec.sdp import MediaDescription, SdpParseError, parse_sdp
from confsec.codec.sip import Request, SipParseError, SipStream
from tests.cli_runner import ROOT

CTX = cr.RequestContext("sips:conf-1@conference.example.test", "sips:carol@conference.example.test")
UNKNOWN = "AES_999_CM_HMAC_SHA9_80"
SUPPORTED = "AES_CM_128_HMAC_SHA1_80"

# Every cell of the features, and the value it must parse to.
REQUESTS: dict[str, cr.MalformedRequest] = {
    "a request line that is not SIP": cr.NotSip(),
    "an INVITE without Call-ID": cr.MissingHeader("Call-ID"),
    "an INVITE with a negative Content-Length": cr.NegativeContentLength(),
    "an INVITE with a Content-Length larger than its body": cr.ContentLengthBeyondBody(),
    "an INVITE with NUL bytes in a header line": cr.NulInHeaderName(),
    "an INVITE with a 100 KB header value": cr.OversizedHeaderValue(100),
    "an INVITE with 300 header fields": cr.ManyHeaderFields(300),
}
OFFERS: dict[str, cr.CraftedOffer] = {
    "an a=crypto key that is not base64": cr.KeyNotBase64(),
    "an a=crypto key of the wrong length for its suite": cr.KeyWrongLength(),
    "an m= line without a port": cr.PortlessMLine(),
    "a body cut short inside the a=crypto line": cr.CutShortInCrypto(),
    f"only the unknown crypto suite {UNKNOWN}": cr.OnlyUnknownSuite(UNKNOWN),
    f"{UNKNOWN} first and {SUPPORTED} second": cr.UnknownSuiteFirst(UNKNOWN, SUPPORTED),
}

# The step texts that carry a cell (steps/robustness_signalling.py).
SENDS = re.compile(r"\w+ sends (.+) to the service over (?:her|his) own TLS connection")
JOINS = re.compile(r"\w+ joins the conference with an offer that has (.+)")


def feature_cells(pattern: re.Pattern[str]) -> set[str]:
    """The cell of every step of the features that `pattern` matches, examples filled in."""
    cells = set()
    for feature in get_features([str(ROOT / "features")]):
        for template in feature.scenarios.values():
            contexts = [c for ex in template.examples for c in ex.as_contexts()] or [{}]
            for context in contexts:
                for step in template.render(context).steps:
                    if m := pattern.fullmatch(step.name):
                        cells.add(m.group(1))
    return cells


# -- the grammar --------------------------------------------------------------------------------


def test_the_features_use_exactly_the_cells_pinned_here() -> None:
    assert feature_cells(SENDS) == set(REQUESTS)
    assert feature_cells(JOINS) == set(OFFERS)


@pytest.mark.parametrize(("cell", "value"), REQUESTS.items())
def test_every_request_cell_parses_to_its_value(cell: str, value: cr.MalformedRequest) -> None:
    assert cr.parse_request(cell) == value
    assert str(value) == cell  # messages say it in the feature's words


@pytest.mark.parametrize(("cell", "value"), OFFERS.items())
def test_every_offer_cell_parses_to_its_value(cell: str, value: cr.CraftedOffer) -> None:
    assert cr.parse_offer(cell) == value
    assert str(value) == cell


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("an INVITE without CSeq", cr.MissingHeader("CSeq")),
        ("an INVITE without via", cr.MissingHeader("Via")),  # header names ignore case
        ("an INVITE with a 8 KB header value", cr.OversizedHeaderValue(8)),
        ("an INVITE with 1000 header fields", cr.ManyHeaderFields(1000)),
    ],
)
def test_other_parameters_within_the_grammar_work(cell: str, value: cr.MalformedRequest) -> None:
    assert cr.parse_request(cell) == value


def test_other_suites_within_the_grammar_work() -> None:
    assert cr.parse_offer("only the unknown crypto suite FOO_BAR") == cr.OnlyUnknownSuite("FOO_BAR")
    both = cr.parse_offer("FOO_BAR first and AEAD_AES_128_GCM second")
    assert both == cr.UnknownSuiteFirst("FOO_BAR", "AEAD_AES_128_GCM")
    crypto = parse_sdp(both.craft()).media[0].crypto
    assert [(c.tag, c.suite) for c in crypto] == [
        (1, "FOO_BAR"),
        (cr.UNKNOWN_FIRST_TAG, "AEAD_AES_128_GCM"),
    ]


def test_a_cell_outside_the_grammar_lists_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match="'a friendly request' is not a malformed request") as info:
        cr.parse_request("a friendly request")
    for form in cr.REQUEST_FORMS:
        assert f"\n  - {form.FORM}" in str(info.value)
    assert "an INVITE with a <kib> KB header value" in str(info.value)
    with pytest.raises(ValueError, match="is not a crafted offer") as info:
        cr.parse_offer("an offer without a=crypto")
    assert "only the unknown crypto suite <suite>" in str(info.value)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("an INVITE without Subject", "has no Subject header to leave out; it has Via, "),
        ("an INVITE with 0 header fields", "must be at least 1, not 0"),
        ("an INVITE with a 0 KB header value", "must be at least 1, not 0"),
        ("an INVITE with a big KB header value", "accepted forms"),
    ],
)
def test_parameters_that_cannot_be_crafted_say_why(cell: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        cr.parse_request(cell)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        (f"only the unknown crypto suite {SUPPORTED}", "is a crypto suite the suite knows"),
        (f"{SUPPORTED} first and {SUPPORTED} second", "is a crypto suite the suite knows"),
        (f"{UNKNOWN} first and FOO_BAR second", "not a suite a secure conference can select"),
        (f"{UNKNOWN} first and NULL_HMAC_SHA1_80 second", "can select"),
    ],
)
def test_suites_that_contradict_the_form_are_refused(cell: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        cr.parse_offer(cell)


def test_forms_and_fields_agree() -> None:
    """Every `<slot>` of a form is a field of its class, and every field a slot."""
    for cls in (*cr.REQUEST_FORMS, *cr.OFFER_FORMS):
        slots = set(re.findall(r"<(\w+)>", cls.FORM))
        assert slots == {f.name for f in dataclasses.fields(cls)}, cls.__name__


# -- crafting: requests -------------------------------------------------------------------------


def _frame(data: bytes) -> Request | None:
    stream = SipStream()
    stream.feed(data)
    msg = stream.next_message()
    assert msg is None or isinstance(msg, Request)
    return msg


def test_the_base_invite_is_well_formed() -> None:
    """The flaws are added to a request the codec takes: each value breaks one thing only."""
    msg = _frame(cr._lines(*cr._invite(CTX), "Content-Length: 0", ""))
    assert msg is not None and msg.method == "INVITE" and msg.uri == CTX.request_uri
    for name in ("Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact"):
        assert msg.headers.get(name), name
    assert msg.from_.uri == CTX.from_uri


@pytest.mark.parametrize(
    ("cell", "reason", "hint"),
    [
        ("a request line that is not SIP", "Request-URI", 400),
        ("an INVITE with a negative Content-Length", "Content-Length", 400),
        ("an INVITE with NUL bytes in a header line", "header name", 400),
        ("an INVITE with a 100 KB header value", "larger than|longer than", 513),
        ("an INVITE with 300 header fields", "header fields", 513),
    ],
)
def test_unparseable_requests_break_the_framing(cell: str, reason: str, hint: int) -> None:
    with pytest.raises(SipParseError, match=reason) as info:
        _frame(REQUESTS[cell].craft(CTX))
    assert info.value.status_hint == hint


@pytest.mark.parametrize("header", ["Call-ID", "CSeq", "Via"])
def test_a_request_without_a_header_parses_but_lacks_it(header: str) -> None:
    msg = _frame(cr.MissingHeader(header).craft(CTX))
    assert msg is not None and msg.headers.get(header) is None
    others = {"Call-ID", "CSeq", "From", "To", "Max-Forwards", "Contact"} - {header}
    assert all(msg.headers.get(h) for h in others)


def test_a_content_length_beyond_the_body_leaves_the_message_incomplete() -> None:
    value = REQUESTS["an INVITE with a Content-Length larger than its body"]
    data = value.craft(CTX)
    assert b"Content-Length: 4096\r\n" in data and len(data.split(b"\r\n\r\n", 1)[1]) < 4096
    assert _frame(data) is None  # a stream waits for the rest
    assert value.incomplete
    assert not any(v.incomplete for v in REQUESTS.values() if v is not value)


def test_oversized_requests_are_as_large_as_their_parameters() -> None:
    assert len(cr.OversizedHeaderValue(100).craft(CTX)) > 100 * 1024
    assert b"x" * 8192 in cr.OversizedHeaderValue(8).craft(CTX)
    assert cr.ManyHeaderFields(300).craft(CTX).count(b"X-Robustness-") == 300
    assert cr.ManyHeaderFields(7).craft(CTX).count(b"X-Robustness-") == 7


# -- crafting: offers ---------------------------------------------------------------------------


def _audio(cell: str) -> MediaDescription:
    offer = parse_sdp(OFFERS[cell].craft())
    assert [m.media for m in offer.media] == ["audio"]
    return offer.media[0]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("an a=crypto key that is not base64", "not base64"),
        ("an a=crypto key of the wrong length for its suite", "needs 30 bytes"),
        ("a body cut short inside the a=crypto line", "needs 30 bytes"),
    ],
)
def test_bad_keys_parse_as_sdp_but_not_as_crypto(cell: str, reason: str) -> None:
    m = _audio(cell)
    assert m.proto == "RTP/SAVP" and m.port == 9
    with pytest.raises(SdpParseError, match=reason):
        m.crypto  # noqa: B018


def test_a_body_cut_short_ends_inside_the_key() -> None:
    body = cr.CutShortInCrypto().craft()
    assert not body.endswith(b"\r\n") and b"a=sendrecv" not in body


def test_an_m_line_without_a_port_is_not_sdp() -> None:
    body = cr.PortlessMLine().craft()
    assert b"\r\nm=audio RTP/SAVP 0\r\n" in body
    with pytest.raises(SdpParseError):
        parse_sdp(body)


def test_unknown_suite_offers() -> None:
    only = _audio(f"only the unknown crypto suite {UNKNOWN}").crypto
    assert [(c.tag, c.suite, c.is_known) for c in only] == [(1, UNKNOWN, False)]
    both = _audio(f"{UNKNOWN} first and {SUPPORTED} second").crypto
    assert [(c.tag, c.suite) for c in both] == [(1, UNKNOWN), (cr.UNKNOWN_FIRST_TAG, SUPPORTED)]
    assert both[1].is_known and not both[1].is_null


def test_offers_carry_fresh_keys() -> None:
    cell = f"{UNKNOWN} first and {SUPPORTED} second"
    assert _audio(cell).crypto[1].key != _audio(cell).crypto[1].key


def test_offers_use_the_media_address_given() -> None:
    offer = parse_sdp(cr.KeyWrongLength().craft("192.0.2.7", 4000))
    assert offer.media[0].port == 4000 and b"c=IN IP4 192.0.2.7" in offer.to_bytes()
