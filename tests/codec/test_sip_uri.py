"""SipUri, NameAddr and Via: parsing, serialising back, and errors."""

from __future__ import annotations

import pytest

from confsec.codec.sip import (
    NameAddr,
    SipParseError,
    SipUri,
    Via,
    parse_name_addr,
    parse_uri,
    parse_via,
)

# -- SipUri --------------------------------------------------------------------------------------

URIS = [
    ("sip:alice@atlanta.com", SipUri("sip", "alice", "atlanta.com")),
    ("sips:bob@biloxi.com:5061", SipUri("sips", "bob", "biloxi.com", 5061)),
    ("sip:atlanta.com;lr", SipUri("sip", None, "atlanta.com", None, {"lr": None})),
    (
        "sip:alice:secretword@atlanta.com;transport=tcp",
        SipUri("sip", "alice", "atlanta.com", None, {"transport": "tcp"}, password="secretword"),
    ),
    (
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        SipUri(
            "sips",
            "alice",
            "atlanta.com",
            headers={"subject": "project%20x", "priority": "urgent"},
        ),
    ),
    (
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        SipUri("sip", "+1-212-555-1212", "gateway.com", None, {"user": "phone"}, password="1234"),
    ),
    ("sip:alice@192.0.2.4", SipUri("sip", "alice", "192.0.2.4")),
    ("sip:[2001:db8::10]:5070", SipUri("sip", None, "2001:db8::10", 5070)),
    ("sips:u@[::1]", SipUri("sips", "u", "::1")),
    (
        "sip:%61lice@atlanta.com;maddr=239.255.255.1;ttl=15",
        SipUri("sip", "%61lice", "atlanta.com", None, {"maddr": "239.255.255.1", "ttl": "15"}),
    ),
    ("tel:+1-201-555-0123", SipUri("tel", "+1-201-555-0123", "")),
    (
        "tel:7042;phone-context=example.com",
        SipUri("tel", "7042", "", None, {"phone-context": "example.com"}),
    ),
]


@pytest.mark.parametrize(("text", "expected"), URIS, ids=[u[0] for u in URIS])
def test_parse_uri(text: str, expected: SipUri) -> None:
    uri = parse_uri(text)
    assert uri == expected
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri
    assert hash(uri) == hash(expected)


def test_uri_scheme_case_and_transport() -> None:
    uri = parse_uri("SIP:bob@Biloxi.COM;Transport=TLS")
    assert uri.scheme == "sip"
    assert uri.host == "Biloxi.COM"
    assert uri.transport == "tls"
    assert str(uri) == "sip:bob@Biloxi.COM;transport=TLS"


BAD_URIS = [
    ("", 0, 400),
    ("alice@atlanta.com", 0, 400),
    ("http://example.com/", 0, 416),
    ("sip:", 4, 400),
    ("sip:@atlanta.com", 4, 400),
    ("sip:alice@", 10, 400),
    ("sip:alice@atlanta.com:99999", 22, 400),
    ("sip:alice@atlanta.com:50x", 22, 400),
    ("sip:alice@[::1", 10, 400),
    ("sip:alice@[zz]", 10, 400),
    ("sip:alice@host name", 14, 400),
    ("sip:alice@atlanta.com;=x", 22, 400),
    ("sip:alice@atlanta.com?novalue", 22, 400),
    ("sip:a@b;lr=", 8, 400),
    ("tel:", 4, 400),
    ("tel:12 34", 6, 400),
]


@pytest.mark.parametrize(("text", "offset", "status"), BAD_URIS, ids=[b[0] for b in BAD_URIS])
def test_bad_uris(text: str, offset: int, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.offset == offset
    assert info.value.status_hint == status


# -- NameAddr ------------------------------------------------------------------------------------

NAME_ADDRS = [
    (
        '"Bob" <sips:bob@biloxi.com>;tag=a48s',
        NameAddr("Bob", "sips:bob@biloxi.com", {"tag": "a48s"}),
        '"Bob" <sips:bob@biloxi.com>;tag=a48s',
    ),
    ("<sip:carol@chicago.com>", NameAddr(None, "sip:carol@chicago.com"), None),
    (
        "sip:+12125551212@phone2net.com;tag=887s",
        NameAddr(None, "sip:+12125551212@phone2net.com", {"tag": "887s"}),
        "<sip:+12125551212@phone2net.com>;tag=887s",
    ),
    (
        "Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8",
        NameAddr("Anonymous", "sip:c8oqz84zk7z@privacy.org", {"tag": "hyh8"}),
        '"Anonymous" <sip:c8oqz84zk7z@privacy.org>;tag=hyh8',
    ),
    (
        "The   Operator <sip:operator@cs.columbia.edu>;tag=287447",
        NameAddr("The Operator", "sip:operator@cs.columbia.edu", {"tag": "287447"}),
        '"The Operator" <sip:operator@cs.columbia.edu>;tag=287447',
    ),
    (
        r'"A \"quoted\" name \\ here" <sip:a@b;transport=tls> ; tag = 1 ; lr',
        NameAddr('A "quoted" name \\ here', "sip:a@b;transport=tls", {"tag": "1", "lr": None}),
        r'"A \"quoted\" name \\ here" <sip:a@b;transport=tls>;tag=1;lr',
    ),
    ('"" <sip:empty@x>', NameAddr("", "sip:empty@x"), None),
    (
        '<sip:a@b>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";expires=60',
        NameAddr(
            None,
            "sip:a@b",
            {"+sip.instance": '"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"', "expires": "60"},
        ),
        None,
    ),
    ('"Ünïcödé" <sip:u@x>', NameAddr("Ünïcödé", "sip:u@x"), None),
    ("<urn:service:sos>", NameAddr(None, "urn:service:sos"), None),
]


@pytest.mark.parametrize(
    ("text", "expected", "canonical"), NAME_ADDRS, ids=[n[0] for n in NAME_ADDRS]
)
def test_parse_name_addr(text: str, expected: NameAddr, canonical: str | None) -> None:
    na = parse_name_addr(text)
    assert na == expected
    assert str(na) == (canonical or text)
    assert parse_name_addr(str(na)) == na
    assert hash(na) == hash(expected)


def test_flag_params_are_legal() -> None:
    assert parse_name_addr("<sip:a@b>;tag").params == {"tag": None}
    assert parse_name_addr("<sip:a@b>;tag").tag is None
    assert parse_via("SIP/2.0/UDP h;branch").branch is None


def test_bare_uri_params_are_header_params() -> None:
    na = parse_name_addr("sip:bob@x;transport=tcp;tag=5")
    assert na.uri == "sip:bob@x"
    assert na.params == {"transport": "tcp", "tag": "5"}
    assert na.tag == "5"
    bracketed = parse_name_addr("<sip:bob@x;transport=tcp>;tag=5")
    assert bracketed.uri == "sip:bob@x;transport=tcp"
    assert bracketed.params == {"tag": "5"}


BAD_NAME_ADDRS: list[tuple[str, int]] = [
    ("", 0),
    ("   ", 3),
    ('"unterminated <sip:a@b>', 0),
    ('"Bob" sip:bob@x', 6),
    ("<sip:a@b", 0),
    ("Bob <>", 5),
    ("Bob <nocolon>", 5),
    ("<sip:a@b> junk", 9),
    ("<sip:a@b>;=1", 10),
    ("sip:a@b?x=y", 0),
    ("Bo@b <sip:a@b>", 0),
    ("*", 0),
]


@pytest.mark.parametrize(("text", "offset"), BAD_NAME_ADDRS, ids=[b[0] for b in BAD_NAME_ADDRS])
def test_bad_name_addrs(text: str, offset: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_name_addr(text)
    assert info.value.offset == offset


# -- Via -------------------------------------------------------------------------------------------

VIAS = [
    (
        "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
        Via("UDP", "pc33.atlanta.com", None, {"branch": "z9hG4bK776asdhds"}),
        None,
    ),
    (
        "SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9;received=192.0.2.101",
        Via(
            "TLS",
            "client.atlanta.example.com",
            5061,
            {"branch": "z9hG4bK74bf9", "received": "192.0.2.101"},
        ),
        None,
    ),
    (
        "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx;rport",
        Via("TCP", "2001:db8::1", 5060, {"branch": "z9hG4bKx", "rport": None}),
        None,
    ),
    (
        "SIP / 2.0 / udp   host.example.com : 5062 ; branch = z9hG4bKy ; rport = 33000",
        Via("UDP", "host.example.com", 5062, {"branch": "z9hG4bKy", "rport": "33000"}),
        "SIP/2.0/UDP host.example.com:5062;branch=z9hG4bKy;rport=33000",
    ),
    ("SIP/2.0/WSS df7jal23ls0d.invalid", Via("WSS", "df7jal23ls0d.invalid"), None),
]


@pytest.mark.parametrize(("text", "expected", "canonical"), VIAS, ids=[v[0] for v in VIAS])
def test_parse_via(text: str, expected: Via, canonical: str | None) -> None:
    via = parse_via(text)
    assert via == expected
    assert str(via) == (canonical or text)
    assert parse_via(str(via)) == via
    assert hash(via) == hash(expected)


def test_via_properties() -> None:
    flag = parse_via("SIP/2.0/UDP h;branch=z9hG4bK1;rport")
    assert flag.branch == "z9hG4bK1" and flag.has_rport and flag.rport is None
    assert flag.received is None
    filled = parse_via("SIP/2.0/UDP h;branch=z9hG4bK1;rport=5066;received=192.0.2.9")
    assert filled.has_rport and filled.rport == 5066 and filled.received == "192.0.2.9"
    none = parse_via("SIP/2.0/UDP h")
    assert none.branch is None and not none.has_rport and none.rport is None
    assert none.protocol == "SIP/2.0"


BAD_VIAS = [
    "SIP/2.0 host",
    "SIP/2.0/UDP",
    "SIP/2.0/UDP ",
    "SIP/2.0/UDP host:port",
    "SIP/2.0/UDP [::1",
    "SIP/2.0/U@P host",
    "SIP/2.0/UDP a, SIP/2.0/UDP b",
    "SIP/2.0/UDP h;=x",
    'SIP/2.0/UDP h;x="unterminated',
]


@pytest.mark.parametrize("text", BAD_VIAS)
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)
