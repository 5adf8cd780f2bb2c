"""Headers: order, immutability, case-insensitive and compact-form lookups, list splitting."""

from __future__ import annotations

import pytest

from confsec.codec.sip import COMPACT_FORMS, Headers, SipParseError, header_key, parse_name_addr
from confsec.errors import LocalProtocolError


@pytest.fixture
def headers() -> Headers:
    return Headers(
        [
            ("v", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com"),
            ("Via", "SIP/2.0/TCP c.example.com;branch=z9hG4bK3"),
            ("call-id", "abc@h"),
            ("Contact", '"Doe, John" <sip:j@x;a=b,c>;q=0.7, <sip:k@y>'),
            ("WWW-Authenticate", 'Digest realm="a,b", nonce="n", qop="auth,auth-int"'),
            ("Subject", "one, two"),
            ("Allow", "INVITE,ACK , BYE,,"),
        ]
    )


def test_sequence_behaviour(headers: Headers) -> None:
    assert len(headers) == 7
    assert headers[2] == ("call-id", "abc@h")
    assert next(iter(headers))[0] == "v"
    assert isinstance(headers[1:3], Headers)
    assert headers[1:3] == [
        ("Via", "SIP/2.0/TCP c.example.com;branch=z9hG4bK3"),
        ("call-id", "abc@h"),
    ]
    assert ("call-id", "abc@h") in headers
    assert "Call-ID" in headers and "i" in headers and "CALL-ID" in headers
    assert "Route" not in headers


def test_immutable_and_hashable(headers: Headers) -> None:
    with pytest.raises(TypeError):
        headers[0] = ("X", "y")  # type: ignore[index]
    assert hash(headers) == hash(Headers(list(headers)))
    assert Headers(headers) == headers


def test_case_insensitive_and_compact(headers: Headers) -> None:
    assert headers.get("Call-ID") == "abc@h"
    assert headers.get("I") == "abc@h"
    assert headers.get("X-Missing") is None
    assert headers.get("X-Missing", "dflt") == "dflt"
    assert header_key("M") == "contact"
    assert header_key("Content-Length") == "content-length"
    for short, full in COMPACT_FORMS.items():
        assert header_key(short) == header_key(full) == full.lower()


def test_get_all_splits_list_headers(headers: Headers) -> None:
    assert headers.get_all("Via") == [
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
        "SIP/2.0/UDP b.example.com",
        "SIP/2.0/TCP c.example.com;branch=z9hG4bK3",
    ]
    assert headers.get("Via") == "SIP/2.0/UDP a.example.com;branch=z9hG4bK1"
    assert headers.get_all("m") == ['"Doe, John" <sip:j@x;a=b,c>;q=0.7', "<sip:k@y>"]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]


@pytest.mark.parametrize(
    "name",
    ["WWW-Authenticate", "Authorization", "Proxy-Authenticate", "Proxy-Authorization", "Date"],
)
def test_get_all_never_splits_auth_and_date(name: str) -> None:
    value = 'Digest realm="a,b", nonce="n", qop="auth,auth-int"'
    assert Headers([(name, value)]).get_all(name) == [value]


def test_subject_not_split(headers: Headers) -> None:
    assert headers.get_all("s") == ["one, two"]


def test_edits_return_new_objects(headers: Headers) -> None:
    replaced = headers.with_("Call-ID", "new")
    assert replaced.get("i") == "new"
    assert headers.get("i") == "abc@h"
    assert replaced[2] == ("Call-ID", "new")  # at the first one's place, with the given name
    single = headers.with_("Via", "SIP/2.0/TLS z.example.com")
    assert single.get_all("Via") == ["SIP/2.0/TLS z.example.com"]
    assert single[0] == ("Via", "SIP/2.0/TLS z.example.com")
    assert len(single) == 6
    appended = headers.with_("Max-Forwards", "70")
    assert appended[-1] == ("Max-Forwards", "70")
    added = headers.add("Route", "<sip:p;lr>")
    assert added[-1] == ("Route", "<sip:p;lr>") and len(added) == 8
    first = headers.add("Via", "SIP/2.0/TLS proxy", first=True)
    assert first.get("Via") == "SIP/2.0/TLS proxy"
    dropped = headers.without("VIA")
    assert "v" not in dropped and len(dropped) == 5


def test_built_from_mapping_and_rejects_bad_items() -> None:
    assert Headers({"To": "<sip:a@b>"}).get("t") == "<sip:a@b>"
    with pytest.raises(LocalProtocolError):
        Headers([("only-name",)])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError):
        Headers([("X", 1)])  # type: ignore[list-item]


@pytest.mark.parametrize("value", ["<sip:a@b, <sip:c@d>", '"unterminated, <sip:c@d>'])
def test_unbalanced_list_value_is_returned_whole(value: str) -> None:
    headers = Headers([("Contact", value)])
    assert headers.get_all("Contact") == [value]
    assert headers.get("m") == value
    with pytest.raises(SipParseError):
        parse_name_addr(headers.get("m") or "")


def test_empty_list_header_values() -> None:
    headers = Headers([("Allow", ""), ("Via", " , "), ("Subject", "")])
    assert headers.get_all("Allow") == []
    assert headers.get("Allow") == ""
    assert headers.get_all("Via") == []
    assert headers.get("Via") == ""
    assert headers.get_all("Subject") == [""]
    assert headers.get("Route") is None


def test_get_skips_empty_list_fields() -> None:
    headers = Headers([("Supported", ""), ("k", "timer")])
    assert headers.get("Supported") == "timer"
