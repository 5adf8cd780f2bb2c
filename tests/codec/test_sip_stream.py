"""SipStream: framing SIP on TCP/TLS byte streams."""

from __future__ import annotations

from pathlib import Path

import pytest

from confsec.codec.sip import Request, Response, SipParseError, SipStream, parse_message

DATA = Path(__file__).parent.parent / "data" / "sip"
FILES = sorted(p.name for p in DATA.glob("*.sip"))


def sample(name: str) -> bytes:
    """A wire sample, with CRLF line ends whatever git did to the file on checkout."""
    return (DATA / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def drain(stream: SipStream) -> list[Request | Response]:
    out = []
    while (msg := stream.next_message()) is not None:
        out.append(msg)
    return out


@pytest.mark.parametrize("name", FILES)
def test_every_prefix_needs_more_data(name: str) -> None:
    data = sample(name)
    for cut in range(len(data)):
        stream = SipStream()
        stream.feed(data[:cut])
        assert stream.next_message() is None, cut
    stream = SipStream()
    stream.feed(data)
    msg = stream.next_message()
    assert msg == parse_message(data)
    assert msg is not None and msg.raw == data
    assert stream.next_message() is None
    assert stream.buffered == 0


@pytest.mark.parametrize("name", FILES)
def test_byte_at_a_time(name: str) -> None:
    data = sample(name)
    stream = SipStream()
    got = []
    for i in range(len(data)):
        stream.feed(data[i : i + 1])
        got.extend(drain(stream))
        if i < len(data) - 1:
            assert got == []
    assert got == [parse_message(data)]


def test_two_messages_in_one_feed() -> None:
    first, second = sample("invite_sdp.sip"), sample("ok_record_route.sip")
    stream = SipStream()
    stream.feed(first + second)
    msgs = drain(stream)
    assert [m.raw for m in msgs] == [first, second]
    assert isinstance(msgs[0], Request) and isinstance(msgs[1], Response)


def test_message_split_across_feeds_at_every_point() -> None:
    first, second = sample("unauthorized_401.sip"), sample("compact.sip")
    data = first + second
    for cut in range(0, len(data), 7):
        stream = SipStream()
        stream.feed(data[:cut])
        msgs = drain(stream)
        stream.feed(data[cut:])
        msgs += drain(stream)
        assert [m.raw for m in msgs] == [first, second], cut


def test_keepalives_skipped_and_counted() -> None:
    msg = sample("multi_via_lines.sip")
    stream = SipStream()
    stream.feed(b"\r\n\r\n")
    assert stream.next_message() is None
    assert stream.keepalives == 1
    stream.feed(b"\r\n")  # a pong: not a ping
    assert stream.next_message() is None
    stream.feed(b"\r\n" + msg + b"\r\n\r\n\r\n")
    msgs = drain(stream)
    assert [m.raw for m in msgs] == [msg]
    assert stream.keepalives == 3
    assert stream.buffered == 0


def test_ping_split_across_feeds() -> None:
    stream = SipStream()
    for byte in b"\r\n\r\n":
        stream.feed(bytes([byte]))
        assert stream.next_message() is None
    assert stream.keepalives == 1


def test_body_is_framed_by_content_length() -> None:
    stream = SipStream()
    stream.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhel")
    assert stream.next_message() is None
    stream.feed(b"loOPTIONS")
    msg = stream.next_message()
    assert msg is not None and msg.body == b"hello"
    assert stream.buffered == len(b"OPTIONS")
    assert stream.next_message() is None


def test_content_length_mandatory() -> None:
    stream = SipStream()
    prefix = b"\r\n\r\n" + sample("invite_sdp.sip")
    stream.feed(prefix)
    drain(stream)
    stream.feed(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n")
    with pytest.raises(SipParseError) as info:
        stream.next_message()
    assert "Content-Length is mandatory" in info.value.reason
    assert info.value.offset == len(prefix)


def test_errors_poison_the_stream() -> None:
    stream = SipStream()
    stream.feed(b"garbage line\r\n\r\n")
    with pytest.raises(SipParseError) as info:
        stream.next_message()
    assert stream.poisoned
    with pytest.raises(SipParseError) as again:
        stream.next_message()
    assert again.value is info.value
    with pytest.raises(SipParseError):
        stream.feed(sample("invite_sdp.sip"))


def test_error_offsets_count_from_stream_start() -> None:
    first = sample("multi_via_lines.sip")
    stream = SipStream()
    stream.feed(first + b"OPTIONS sip:a@b SIP/2.0\r\nBad Header: 1\r\n\r\n")
    assert stream.next_message() is not None
    with pytest.raises(SipParseError) as info:
        stream.next_message()
    assert info.value.offset == len(first) + len(b"OPTIONS sip:a@b SIP/2.0\r\n")


def test_body_limit() -> None:
    stream = SipStream(max_body_bytes=10)
    stream.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(SipParseError) as info:
        stream.next_message()
    assert info.value.status_hint == 413
    assert info.value.offset == 0


def test_default_body_limit_is_one_mib() -> None:
    ok = SipStream()
    ok.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1048576\r\n\r\n")
    assert ok.next_message() is None
    big = SipStream()
    big.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1048577\r\n\r\n")
    with pytest.raises(SipParseError, match="exceeds"):
        big.next_message()


def test_header_limit_without_end_of_headers() -> None:
    stream = SipStream(max_header_bytes=1024)
    stream.feed(b"OPTIONS sip:a@b SIP/2.0\r\n")
    for i in range(200):
        stream.feed(b"X-Pad-%d: aaaa\r\n" % i)
        try:
            assert stream.next_message() is None
        except SipParseError as exc:
            assert exc.status_hint == 513
            assert exc.offset == 1024
            break
    else:
        pytest.fail("no error for an endless header section")


def test_endless_line_refused_early() -> None:
    stream = SipStream()
    stream.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX: ")
    stream.feed(b"a" * 9000)
    with pytest.raises(SipParseError) as info:
        stream.next_message()
    assert info.value.status_hint == 513
    assert info.value.offset == len(b"OPTIONS sip:a@b SIP/2.0\r\n")


def test_bad_content_length_on_stream() -> None:
    stream = SipStream()
    stream.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n")
    with pytest.raises(SipParseError, match="bad Content-Length"):
        stream.next_message()


def test_non_utf8_on_stream() -> None:
    stream = SipStream()
    stream.feed(b"\r\nMESSAGE sip:a@b SIP/2.0\r\nSubject: \xff\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(SipParseError) as info:
        stream.next_message()
    assert info.value.offset == 2 + len(b"MESSAGE sip:a@b SIP/2.0\r\nSubject: ")
