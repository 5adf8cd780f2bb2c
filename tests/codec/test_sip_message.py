"""parse_message / Request / Response / make_response against real SIP messages and bad input."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from confsec.codec.sip import (
    REASON_PHRASES,
    Headers,
    NameAddr,
    Request,
    Response,
    SipParseError,
    Via,
    make_response,
    parse_message,
)
from confsec.errors import LocalProtocolError, RemoteProtocolError

DATA = Path(__file__).parent.parent / "data" / "sip"


def sample(name: str) -> bytes:
    """A wire sample, with CRLF line ends whatever git did to the file on checkout."""
    return (DATA / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class Case:
    file: str
    first: str | int  # method or status
    call_id: str
    cseq: tuple[int, str]
    branches: tuple[str, ...]
    body_len: int
    byte_exact: bool = True  # to_bytes() gives back the very bytes received


CASES = [
    Case(
        "invite_sdp.sip",
        "INVITE",
        "3848276298220188511@atlanta.example.com",
        (1, "INVITE"),
        ("z9hG4bK74bf9",),
        259,
    ),
    Case(
        "ok_record_route.sip",
        200,
        "3848276298220188511@atlanta.example.com",
        (1, "INVITE"),
        ("z9hG4bK721e4.1", "z9hG4bK2d4790.1", "z9hG4bK74bf9"),
        241,
    ),
    Case(
        "unauthorized_401.sip",
        401,
        "1j9FpLxk3uxtm8tn@atlanta.example.com",
        (1, "REGISTER"),
        ("z9hG4bKnashds7",),
        0,
    ),
    Case(
        "register_authorization.sip",
        "REGISTER",
        "1j9FpLxk3uxtm8tn@biloxi.example.com",
        (2, "REGISTER"),
        ("z9hG4bKnashd92",),
        0,
    ),
    Case(
        "compact.sip",
        "INVITE",
        "0ha0isndaksdjweiafasdk3",
        (8, "INVITE"),
        ("z9hG4bK-1", "z9hG4bK-2"),
        259,
    ),
    Case(
        "folded.sip",
        "OPTIONS",
        "a84b4c76e66710",
        (63104, "OPTIONS"),
        ("z9hG4bKhjhs8ass877", "z9hG4bK-proxy"),
        0,
        byte_exact=False,
    ),
    Case(
        "multi_via_one_line.sip",
        "BYE",
        "bye-1@example.com",
        (2, "BYE"),
        ("z9hG4bK-p2", "z9hG4bK-p1", "z9hG4bK-ua"),
        0,
    ),
    Case(
        "multi_via_lines.sip",
        "BYE",
        "bye-1@example.com",
        (2, "BYE"),
        ("z9hG4bK-p2", "z9hG4bK-p1", "z9hG4bK-ua"),
        0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_sample_parses(case: Case) -> None:
    data = sample(case.file)
    msg = parse_message(data)
    assert msg.raw == data
    if isinstance(case.first, str):
        assert isinstance(msg, Request)
        assert msg.method == case.first
    else:
        assert isinstance(msg, Response)
        assert msg.status == case.first
    assert msg.call_id == case.call_id
    assert msg.cseq == case.cseq
    assert tuple(v.branch for v in msg.via) == case.branches
    assert msg.branch == case.branches[0]
    assert len(msg.body) == case.body_len
    assert isinstance(msg.from_, NameAddr)
    assert isinstance(msg.to, NameAddr)


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_sample_round_trips(case: Case) -> None:
    data = sample(case.file)
    msg = parse_message(data)
    again = parse_message(msg.to_bytes())
    assert again == msg
    assert again.to_bytes() == msg.to_bytes()
    if case.byte_exact:
        assert msg.to_bytes() == data


def test_invite_with_sdp_fields() -> None:
    msg = parse_message(sample("invite_sdp.sip"))
    assert isinstance(msg, Request)
    assert msg.uri == "sips:bob@biloxi.example.com"
    assert msg.content_type == "application/sdp"
    assert msg.body.startswith(b"v=0\r\n")
    assert msg.body.endswith(b"a=rtpmap:8 PCMA/8000\r\n")
    assert msg.headers.get_all("Allow") == [
        "INVITE",
        "ACK",
        "CANCEL",
        "OPTIONS",
        "BYE",
        "REFER",
        "NOTIFY",
    ]
    assert msg.headers.get_all("Supported") == ["replaces", "timer"]
    assert msg.from_ == NameAddr("Alice", "sips:alice@atlanta.example.com", {"tag": "9fxced76sl"})
    assert msg.to.tag is None
    assert msg.via == [
        Via("TLS", "client.atlanta.example.com", 5061, {"branch": "z9hG4bK74bf9"}),
    ]


def test_ok_with_record_route() -> None:
    msg = parse_message(sample("ok_record_route.sip"))
    assert isinstance(msg, Response)
    assert msg.reason == "OK"
    assert msg.headers.get_all("Record-Route") == [
        "<sips:ss2.biloxi.example.com;lr>",
        "<sips:ss1.atlanta.example.com;lr>",
    ]
    bottom = msg.via[-1]
    assert bottom.received == "192.0.2.101"
    assert bottom.rport == 50122
    assert msg.to.tag == "314159"


def test_401_challenge_is_not_split() -> None:
    msg = parse_message(sample("unauthorized_401.sip"))
    challenge = msg.headers.get_all("WWW-Authenticate")
    assert len(challenge) == 1
    assert challenge[0].startswith('Digest realm="atlanta.example.com", qop="auth,auth-int"')
    assert msg.headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_contact_list_with_comma_in_display_name() -> None:
    msg = parse_message(sample("register_authorization.sip"))
    contacts = msg.headers.get_all("Contact")
    assert contacts == [
        "<sips:bob@client.biloxi.example.com>;expires=3600",
        '"Bob, mobile" <sips:bob@mobile.biloxi.example.com>;q=0.5',
    ]
    authorization = msg.headers.get_all("Authorization")
    assert len(authorization) == 1
    assert 'response="dfe56131d1958046689d83306477ecc"' in authorization[0]


def test_compact_forms() -> None:
    msg = parse_message(sample("compact.sip"))
    assert msg.headers.get("Call-ID") == msg.headers.get("i") == "0ha0isndaksdjweiafasdk3"
    assert msg.headers.get("content-length") == "259"
    assert msg.content_type == "application/sdp"
    assert msg.headers.get_all("Supported") == ["100rel", "timer"]
    assert msg.headers.get("Subject") == "compact forms everywhere"
    assert msg.from_.uri == "sip:mgoodman@example.net"
    assert msg.from_.tag == "12345"
    assert msg.to.display == "I have a user name of extreme proportion"
    assert msg.to.tag is None  # the tag is inside <>: a URI parameter, not a header parameter
    assert msg.via[1].has_rport and msg.via[1].rport is None
    # The compact name is kept on output.
    assert b"\r\nl: 259\r\n" in msg.to_bytes()


def test_folded_headers_are_unfolded() -> None:
    msg = parse_message(sample("folded.sip"))
    assert msg.headers.get("Subject") == (
        "I know you're there, pull up the blinds, it's too dark in here"
    )
    assert [v.host for v in msg.via] == ["pc33.atlanta.example.com", "proxy.atlanta.example.com"]
    assert b"\r\n " not in msg.to_bytes()


def test_via_in_one_line_equals_via_in_several_lines() -> None:
    one = parse_message(sample("multi_via_one_line.sip"))
    many = parse_message(sample("multi_via_lines.sip"))
    assert one.via == many.via
    assert len(one.headers.fields("Via")) == 1
    assert len(many.headers.fields("Via")) == 3
    ipv6 = one.via[2]
    assert (ipv6.host, ipv6.port, ipv6.received) == ("2001:db8::9", 5070, "2001:db8::9")
    assert str(ipv6).startswith("SIP/2.0/UDP [2001:db8::9]:5070;")


def test_bare_lf_and_leading_crlf_accepted() -> None:
    data = b"\r\n\r\nOPTIONS sip:x@y SIP/2.0\nCall-ID: 1\nCSeq: 1 OPTIONS\n\n"
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.call_id == "1"
    assert msg.raw == data


def test_content_length_truncates_datagram() -> None:
    msg = parse_message(b"MESSAGE sip:x@y SIP/2.0\r\nContent-Length: 5\r\n\r\nhello, trailing junk")
    assert msg.body == b"hello"


def test_no_content_length_takes_rest_of_datagram() -> None:
    msg = parse_message(b"MESSAGE sip:x@y SIP/2.0\r\nCall-ID: a\r\n\r\nhello")
    assert msg.body == b"hello"


def test_equal_duplicate_content_lengths_accepted() -> None:
    msg = parse_message(b"MESSAGE sip:x@y SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nhi")
    assert msg.body == b"hi"


def test_response_reason_can_be_empty_or_utf8() -> None:
    assert parse_message(b"SIP/2.0 200 \r\n\r\n").reason == ""
    assert parse_message(b"SIP/2.0 200\r\n\r\n").reason == ""
    msg = parse_message("SIP/2.0 486 Besetzt – später\r\n\r\n".encode())
    assert msg.reason == "Besetzt – später"


# -- malformed input -------------------------------------------------------------------------

GOOD_HEAD = b"INVITE sip:bob@biloxi.com SIP/2.0\r\nCall-ID: a\r\n"

MALFORMED = [
    # (id, bytes, expected offset, expected status_hint, words in the reason)
    ("empty", b"", 0, 400, "no SIP message"),
    ("keepalive-only", b"\r\n\r\n", 4, 400, "no SIP message"),
    ("no-blank-line", GOOD_HEAD, len(GOOD_HEAD), 400, "not terminated"),
    ("two-word-request-line", b"INVITE sip:bob@biloxi.com\r\n\r\n", 0, 400, "start line"),
    ("double-space", b"INVITE  sip:bob@x SIP/2.0\r\n\r\n", 0, 400, "start line"),
    ("bad-method", b"INV@TE sip:bob@x SIP/2.0\r\n\r\n", 0, 400, "method"),
    ("bad-uri", b"INVITE bob SIP/2.0\r\n\r\n", 7, 400, "Request-URI"),
    ("bad-version", b"INVITE sip:bob@x SIP/two\r\n\r\n", 17, 400, "version"),
    ("bad-status", b"SIP/2.0 2x0 OK\r\n\r\n", 8, 400, "status code"),
    ("status-out-of-range", b"SIP/2.0 700 Huh\r\n\r\n", 8, 400, "out of range"),
    ("missing-colon", GOOD_HEAD + b"Max-Forwards 70\r\n\r\n", len(GOOD_HEAD), 400, "':'"),
    ("space-in-name", GOOD_HEAD + b"Max Forwards: 70\r\n\r\n", len(GOOD_HEAD), 400, "name"),
    ("empty-name", GOOD_HEAD + b": 70\r\n\r\n", len(GOOD_HEAD), 400, "name"),
    ("fold-first", b"INVITE sip:b@x SIP/2.0\r\n folded\r\n\r\n", 24, 400, "continuation"),
    ("bare-cr", GOOD_HEAD + b"X: a\rb\r\n\r\n", len(GOOD_HEAD) + 4, 400, "bare CR"),
    ("cl-letters", GOOD_HEAD + b"Content-Length: ten\r\n\r\n", len(GOOD_HEAD), 400, "Content-L"),
    ("cl-negative", GOOD_HEAD + b"Content-Length: -1\r\n\r\n", len(GOOD_HEAD), 400, "Content-L"),
    ("cl-plus", GOOD_HEAD + b"l: +4\r\n\r\nabcd", len(GOOD_HEAD), 400, "Content-Length"),
    ("cl-huge", GOOD_HEAD + b"Content-Length: 99999999999999999999\r\n\r\n", 47, 413, "large"),
    ("cl-longer-than-body", GOOD_HEAD + b"Content-Length: 10\r\n\r\nabc", 72, 400, "shorter"),
    (
        "cl-conflict",
        GOOD_HEAD + b"Content-Length: 1\r\nl: 2\r\n\r\nab",
        len(GOOD_HEAD) + 19,
        400,
        "conflicting",
    ),
    ("non-utf8-value", GOOD_HEAD + b"Subject: caf\xe9\r\n\r\n", len(GOOD_HEAD) + 12, 400, "UTF-8"),
    ("non-utf8-start", b"INVITE sip:b\xff@x SIP/2.0\r\n\r\n", 12, 400, "UTF-8"),
    ("non-utf8-name", GOOD_HEAD + b"X\xc3\xa9: 1\r\n\r\n", len(GOOD_HEAD), 400, "name"),
]


@pytest.mark.parametrize(
    ("data", "offset", "status_hint", "words"),
    [m[1:] for m in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_malformed(data: bytes, offset: int, status_hint: int, words: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    err = info.value
    assert isinstance(err, RemoteProtocolError)
    assert err.offset == offset, err
    assert err.status_hint == status_hint
    assert words in err.reason
    assert f"at byte {offset}" in str(err)


def test_oversized_header_section() -> None:
    data = GOOD_HEAD + b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"a" * 100) for i in range(700))
    with pytest.raises(SipParseError) as info:
        parse_message(data + b"\r\n")
    assert info.value.status_hint == 513
    assert info.value.offset == 64 * 1024
    assert "larger than 65536" in info.value.reason


def test_header_section_limit_is_configurable() -> None:
    data = GOOD_HEAD + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
    parse_message(data)
    with pytest.raises(SipParseError, match="larger than 100"):
        parse_message(data, max_header_bytes=100)


def test_too_long_line() -> None:
    data = GOOD_HEAD + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n"
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.offset == len(GOOD_HEAD)
    assert info.value.status_hint == 513
    assert "line longer" in info.value.reason


def test_too_many_headers() -> None:
    data = GOOD_HEAD + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n"
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status_hint == 513
    assert "more than 256" in info.value.reason
    # GOOD_HEAD holds one header, so the 256th X- header is the first one too many.
    assert info.value.offset == len(GOOD_HEAD) + sum(len(b"X-%d: 1\r\n" % i) for i in range(255))


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("Call-ID", "missing Call-ID"),
        ("CSeq", "missing CSeq"),
        ("From", "missing From"),
        ("To", "missing To"),
    ],
)
def test_accessors_raise_on_missing_header(header: str, words: str) -> None:
    msg = parse_message(b"OPTIONS sip:x@y SIP/2.0\r\n\r\n")
    attr = {"Call-ID": "call_id", "CSeq": "cseq", "From": "from_", "To": "to"}[header]
    with pytest.raises(SipParseError, match=words):
        getattr(msg, attr)
    assert msg.via == []
    assert msg.branch is None
    assert msg.content_type is None


@pytest.mark.parametrize("value", ["1", "x INVITE", "1 INVITE extra", "99999999999 INVITE"])
def test_bad_cseq(value: str) -> None:
    msg = parse_message(f"OPTIONS sip:x@y SIP/2.0\r\nCSeq: {value}\r\n\r\n".encode())
    with pytest.raises(SipParseError):
        _ = msg.cseq


# -- building ----------------------------------------------------------------------------------


def _invite_headers() -> Headers:
    return Headers(
        [
            ("Via", "SIP/2.0/TLS pc33.atlanta.com:5061;branch=z9hG4bK776asdhds"),
            ("Max-Forwards", "70"),
            ("To", "Bob <sips:bob@biloxi.com>"),
            ("From", "Alice <sips:alice@atlanta.com>;tag=1928301774"),
            ("Call-ID", "a84b4c76e66710@pc33.atlanta.com"),
            ("CSeq", "314159 INVITE"),
            ("Contact", "<sips:alice@pc33.atlanta.com>"),
            ("Content-Type", "application/sdp"),
        ]
    )


def test_build_sets_content_length() -> None:
    req = Request("INVITE", "sips:bob@biloxi.com", _invite_headers(), b"v=0\r\n")
    assert req.raw is None
    data = req.to_bytes()
    assert data.startswith(b"INVITE sips:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/TLS ")
    assert data.endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")
    assert parse_message(data) == Request(
        "INVITE",
        "sips:bob@biloxi.com",
        _invite_headers().add("Content-Length", "5"),
        b"v=0\r\n",
    )


def test_build_corrects_wrong_content_length_in_place() -> None:
    headers = _invite_headers().add("l", "99").add("Content-Length", "7")
    data = Request("INVITE", "sips:bob@biloxi.com", headers, b"abc").to_bytes()
    assert data.count(b"Content-Length") == 0
    assert data.endswith(b"\r\nl: 3\r\n\r\nabc")


def test_unchecked_keeps_bad_content_length_and_values() -> None:
    headers = _invite_headers().add("Content-Length", "99").add("X-Evil", "a\r\nInjected: 1")
    req = Request("INV ITE", "not a uri", headers, b"abc", unchecked=True)
    data = req.to_bytes()
    assert data.startswith(b"INV ITE not a uri SIP/2.0\r\n")
    assert b"Content-Length: 99\r\n" in data
    assert b"X-Evil: a\r\nInjected: 1\r\n" in data


def test_unchecked_can_carry_non_utf8_bytes_via_surrogateescape() -> None:
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    req = Request("OPTIONS", "sip:x@y", [("Subject", bad)], unchecked=True)
    data = req.to_bytes()
    assert b"Subject: caf\xe9\r\n" in data
    with pytest.raises(SipParseError, match="UTF-8"):
        parse_message(data)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "INV ITE"},
        {"method": ""},
        {"uri": "bob"},
        {"uri": "sip:bob x"},
        {"version": "HTTP/1.1"},
        {"headers": [("Bad Name", "x")]},
        {"headers": [("X", "a\r\nb")]},
        {"headers": [("X", "a\nb")]},
        {"headers": [("X", "a\x00b")]},
        {"headers": [("X", "\udce9")]},
        {"body": "text, not bytes"},
    ],
)
def test_request_build_validation(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "method": "OPTIONS",
        "uri": "sip:x@y",
        "headers": Headers([("Call-ID", "1")]),
        "body": b"",
    }
    args.update(kwargs)
    with pytest.raises(LocalProtocolError):
        Request(**args)  # type: ignore[arg-type]
    Request(**args, unchecked=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [99, 700, 0, True])
def test_response_status_validation(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        Response(status, "X", Headers())
    assert Response(status, "X", Headers(), unchecked=True).status == status


def test_response_reason_validation() -> None:
    with pytest.raises(LocalProtocolError):
        Response(200, "O\r\nK", Headers())


def test_headers_coerced_and_message_frozen() -> None:
    req = Request("OPTIONS", "sip:x@y", [("Call-ID", "1")])  # type: ignore[arg-type]
    assert isinstance(req.headers, Headers)
    with pytest.raises(AttributeError):
        req.method = "BYE"  # type: ignore[misc]
    assert req.header("i") == "1"


def test_replace_on_parsed_message_drops_raw_and_checks() -> None:
    parsed = parse_message(sample("invite_sdp.sip"))
    edited = dataclasses.replace(parsed, body=b"")
    assert edited.raw is None
    assert edited.to_bytes().endswith(b"Content-Length: 0\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(parsed, method="BAD METHOD")


def test_parsed_message_is_not_held_to_build_rules() -> None:
    # A NUL in a value is refused when building but is evidence when received.
    data = b"OPTIONS sip:a@b SIP/2.0\r\nX-Odd: a\x00b\r\n\r\n"
    msg = parse_message(data)
    assert msg.headers.get("X-Odd") == "a\x00b"
    assert msg.raw == data
    with pytest.raises(LocalProtocolError):
        Request("OPTIONS", "sip:a@b", msg.headers)


def test_equality_ignores_raw() -> None:
    built = Request("OPTIONS", "sip:x@y", Headers([("Content-Length", "0")]))
    parsed = parse_message(built.to_bytes())
    assert parsed == built
    assert parsed.raw is not None and built.raw is None


# -- make_response -----------------------------------------------------------------------------


def test_make_response_copies_rfc3261_headers() -> None:
    req = parse_message(sample("multi_via_lines.sip"))
    assert isinstance(req, Request)
    resp = make_response(req, 200, headers=[("Contact", "<sip:bob@192.0.2.4>")])
    assert resp.reason == "OK"
    assert resp.headers.fields("Via") == req.headers.fields("Via")
    assert resp.call_id == req.call_id
    assert resp.cseq == req.cseq
    assert resp.from_ == req.from_
    assert resp.to == req.to  # To already had a tag: kept as is
    assert "Route" not in resp.headers
    assert "Max-Forwards" not in resp.headers
    assert resp.headers.get("Contact") == "<sip:bob@192.0.2.4>"
    again = parse_message(resp.to_bytes())
    assert again == Response(200, "OK", resp.headers.add("Content-Length", "0"))


def test_make_response_adds_to_tag() -> None:
    req = parse_message(sample("invite_sdp.sip"))
    assert isinstance(req, Request)
    resp = make_response(req, 180, to_tag="a6c85cf")
    assert resp.reason == "Ringing"
    assert resp.to.tag == "a6c85cf"
    assert resp.to.uri == req.to.uri
    assert make_response(req, 486, "Busy Here Now").reason == "Busy Here Now"
    assert make_response(req, 100).to.tag is None


def test_make_response_copies_timestamp_into_100_only() -> None:
    req = Request("INVITE", "sip:x@y", [("Call-ID", "c"), ("Timestamp", "54")])  # type: ignore[arg-type]
    assert make_response(req, 100).headers.get("Timestamp") == "54"
    assert "Timestamp" not in make_response(req, 180).headers


def test_reason_phrase_table() -> None:
    assert REASON_PHRASES[401] == "Unauthorized"
    assert REASON_PHRASES[407] == "Proxy Authentication Required"
    assert REASON_PHRASES[488] == "Not Acceptable Here"
    req = Request("OPTIONS", "sip:x@y", Headers())
    assert make_response(req, 499).reason == "Client Error"
