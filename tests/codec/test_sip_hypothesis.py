"""Property tests: no input makes the SIP codec raise anything but SipParseError, and built
messages survive a round trip through the wire form."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from confsec.codec.sip import (
    Headers,
    Request,
    Response,
    SipParseError,
    SipStream,
    header_key,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)

DATA = Path(__file__).parent.parent / "data" / "sip"
SAMPLES = [
    (p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    for p in sorted(DATA.glob("*.sip"))
]

# CONFSEC_FUZZ_EXAMPLES=20000 for a longer soak than the default CI run.
SETTINGS = settings(
    max_examples=int(os.environ.get("CONFSEC_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Bytes that look a bit like SIP reach deeper into the parser than uniform noise.
_SIPISH = st.sampled_from(
    [
        b"INVITE sip:a@b SIP/2.0",
        b"SIP/2.0 200 OK",
        b"\r\n",
        b"\n",
        b"\r",
        b": ",
        b"Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK",
        b"Content-Length: ",
        b"l: 3",
        b'From: "a\\" b" <sip:x@y>;tag=',
        b"To: sip:x;tag=1",
        b"CSeq: 1 INVITE",
        b"Call-ID: x",
        b" ",
        b"\t",
        b",",
        b";",
        b"<",
        b">",
        b'"',
        b"\xff",
        b"\xc3\xa9",
        b"0",
        b"99999999999",
    ]
)
SIPISH_BYTES = st.lists(st.one_of(_SIPISH, st.binary(max_size=8)), max_size=40).map(b"".join)
ANY_BYTES = st.one_of(st.binary(max_size=600), SIPISH_BYTES)


def _exercise(msg: Request | Response) -> None:
    """Touch every accessor: each may raise SipParseError, nothing else."""
    for attr in ("call_id", "cseq", "from_", "to", "via", "branch", "content_type"):
        try:
            getattr(msg, attr)
        except SipParseError:
            pass
    for name, _ in msg.headers:
        msg.headers.get(name)
        msg.headers.get_all(name)
    for value in msg.headers.get_all("Contact") + msg.headers.get_all("Route"):
        try:
            parse_name_addr(value)
        except SipParseError:
            pass
    msg.to_bytes()


@SETTINGS
@given(ANY_BYTES)
@example(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1" + b"0" * 5000 + b"\r\n\r\n")
@example(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [\r\n\r\n")
def test_parse_message_only_raises_sip_parse_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(data)
        return
    _exercise(msg)


@SETTINGS
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_samples_only_raise_sip_parse_error(sample: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(sample)))
    junk = data.draw(st.binary(max_size=4) | _SIPISH)
    cut = data.draw(st.integers(0, 4))
    mutated = sample[:pos] + junk + sample[pos + cut :]
    try:
        msg = parse_message(mutated)
    except SipParseError:
        return
    _exercise(msg)


@SETTINGS
@given(st.lists(ANY_BYTES, max_size=6))
def test_stream_only_raises_sip_parse_error(chunks: list[bytes]) -> None:
    stream = SipStream(max_header_bytes=2048, max_body_bytes=4096)
    try:
        for chunk in chunks:
            stream.feed(chunk)
            while (msg := stream.next_message()) is not None:
                _exercise(msg)
    except SipParseError:
        assert stream.poisoned


@SETTINGS
@given(st.text(max_size=80))
def test_field_parsers_only_raise_sip_parse_error(text: str) -> None:
    for parse in (parse_uri, parse_name_addr, parse_via):
        try:
            parse(text)
        except SipParseError:
            pass


# -- round trip of generated requests ------------------------------------------------------------

TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
HOST = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,5}){0,2}", fullmatch=True)
VALUE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40
).map(lambda v: v.strip(" \t"))
HEADER = st.tuples(TOKEN.filter(lambda n: header_key(n) != "content-length"), VALUE)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(TOKEN)
    uri = f"{draw(st.sampled_from(['sip', 'sips']))}:{draw(TOKEN)}@{draw(HOST)}"
    headers = draw(st.lists(HEADER, max_size=12))
    body = draw(st.binary(max_size=64))
    return Request(method, uri, Headers(headers), body)


@SETTINGS
@given(requests())
def test_generated_requests_round_trip(req: Request) -> None:
    wire = req.to_bytes()
    parsed = parse_message(wire)
    assert isinstance(parsed, Request)
    assert (parsed.method, parsed.uri, parsed.body, parsed.version) == (
        req.method,
        req.uri,
        req.body,
        req.version,
    )
    assert parsed.headers == req.headers.add("Content-Length", str(len(req.body)))
    assert parsed.to_bytes() == wire
    stream = SipStream()
    stream.feed(wire + wire)
    assert stream.next_message() == parsed
    assert stream.next_message() == parsed
    assert stream.next_message() is None


@SETTINGS
@given(st.integers(100, 699), VALUE, st.lists(HEADER, max_size=6), st.binary(max_size=32))
def test_generated_responses_round_trip(
    status: int, reason: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    resp = Response(status, reason, Headers(headers), body)
    parsed = parse_message(resp.to_bytes())
    assert parsed == Response(
        status, reason, resp.headers.add("Content-Length", str(len(body))), body
    )
