"""confsec.codec.sdp: real offers, byte-exact round trips, every malformed line, a=crypto."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confsec.codec.sdp import (
    SRTP_SUITES,
    Connection,
    CryptoAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    parse_sdp,
)
from confsec.errors import LocalProtocolError, RemoteProtocolError

DATA = Path(__file__).resolve().parents[1] / "data" / "sdp"
SAMPLES = sorted(DATA.glob("*.sdp"))
# Samples whose lines are in RFC 8866 order: writing them from the fields gives the same bytes.
CANONICAL = [p for p in SAMPLES if p.name != "out_of_order.sdp"]


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def key_text(n: int, seed: str = "k") -> str:
    return base64.b64encode(hashlib.sha512(seed.encode()).digest()[:n]).decode()


MINIMAL = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/SAVP 0\r\n"
)


# --------------------------------------------------------------------------------------------
# Samples: round trip
# --------------------------------------------------------------------------------------------


def test_samples_present() -> None:
    assert len(SAMPLES) >= 6


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_parsed_sample_round_trips_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    sd = parse_sdp(data)
    assert sd.raw == data
    assert sd.to_bytes() == crlf(data)
    # Str input gives the same description.
    assert parse_sdp(data.decode()) == sd


@pytest.mark.parametrize("path", CANONICAL, ids=lambda p: p.name)
def test_sample_written_from_fields_is_identical(path: Path) -> None:
    """replace() drops `raw`, so this serialises every field: nothing may be lost or moved."""
    sd = parse_sdp(path.read_bytes())
    rebuilt = dataclasses.replace(sd)
    assert rebuilt.raw is None
    assert rebuilt.to_bytes() == crlf(path.read_bytes())


def test_out_of_order_lines_are_kept_as_received_until_changed() -> None:
    data = sample("out_of_order.sdp")
    sd = parse_sdp(data)
    assert sd.to_bytes() == data
    rewritten = dataclasses.replace(sd).to_bytes()
    assert rewritten != data
    assert rewritten.splitlines()[3:6] == [b"c=IN IP4 192.0.2.1", b"t=0 0", b"a=tool:sloppy-stack"]
    assert parse_sdp(rewritten) == sd
    media = sd.media[0]
    assert media.connection == Connection("IN", "IP4", "192.0.2.2")
    assert media.extra_lines == (("b", "AS:64"),)


def test_lf_only_input_is_written_with_crlf() -> None:
    data = sample("lf_only_offer.sdp")
    assert b"\r" not in data
    sd = parse_sdp(data)
    assert sd.to_bytes() == data.replace(b"\n", b"\r\n")
    media = sd.media[0]
    assert media.direction == "recvonly"
    assert media.connection_address == "203.0.113.9"
    assert media.crypto[0].lifetime == 2**31


def test_mixed_line_ends_and_missing_final_line_end() -> None:
    data = b"v=0\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\nc=IN IP4 192.0.2.1\r\nt=0 0"
    sd = parse_sdp(data)
    assert sd.to_bytes() == crlf(data) + b"\r\n"


# --------------------------------------------------------------------------------------------
# Samples: content
# --------------------------------------------------------------------------------------------


def test_phone_offer() -> None:
    sd = parse_sdp(sample("phone_sdes_audio_video_offer.sdp"))
    assert sd.version == 0
    assert sd.origin.username == "1001"
    assert sd.origin.session_version == 1689
    assert sd.session_name == "SDP data"
    assert sd.extra_lines == (("b", "AS:2048"),)
    assert sd.attributes == (("X-nat", "0"),)
    audio, video = sd.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 11780, "RTP/SAVP")
    assert audio.formats == ("9", "0", "8", "18", "101")
    assert audio.connection is None
    assert audio.connection_address == "192.0.2.45"
    assert audio.rtcp_mux and not video.rtcp_mux
    assert audio.direction == "sendrecv"
    assert audio.get_attributes("rtpmap")[:2] == ["9 G722/8000", "0 PCMU/8000"]
    assert audio.get_attribute("fmtp") == "18 annexb=no"
    assert audio.get_attribute("rtcp-mux") is None and audio.has_attribute("rtcp-mux")
    assert [(c.tag, c.suite) for c in audio.crypto] == [
        (1, "AES_CM_128_HMAC_SHA1_80"),
        (2, "AES_CM_128_HMAC_SHA1_32"),
    ]
    assert all(len(c.key) == 16 and len(c.salt) == 14 for c in audio.crypto)
    assert audio.is_secure and video.is_secure
    assert video.extra_lines == (("b", "TIAS:2048000"),)
    assert video.get_attribute("content") == "main"


def test_offer_with_several_crypto_lines() -> None:
    (audio,) = parse_sdp(sample("several_crypto_offer.sdp")).media
    crypto = {c.tag: c for c in audio.crypto}
    assert list(crypto) == [1, 2, 3, 4, 5, 6, 7]
    assert (len(crypto[1].key), len(crypto[1].salt)) == (32, 12)
    assert (len(crypto[2].key), len(crypto[2].salt), crypto[2].lifetime) == (16, 12, 2**31)
    assert crypto[3].lifetime == 2**20 and crypto[3].mki == (1, 4)
    assert len(crypto[3].extra_key_params) == 1
    assert crypto[3].extra_key_params[0].endswith("|2^20|2:4")
    assert crypto[4].lifetime == 1048576
    assert crypto[4].session_params == ("KDR=10", "UNENCRYPTED_SRTCP")
    assert crypto[4].is_null
    assert not crypto[5].is_known and crypto[5].suite_info is None
    assert (len(crypto[5].key), crypto[5].salt) == (46, b"")
    assert crypto[6].is_known and crypto[6].is_null
    assert crypto[7].is_null
    assert not any(c.is_null for c in (crypto[1], crypto[2], crypto[3]))
    for c in crypto.values():
        assert CryptoAttribute.parse(c.to_value()) == c
    # A parsed value is written back as received; from the fields it means the same.
    for name, value in audio.attributes:
        if name == "crypto":
            parsed = CryptoAttribute.parse(value)
            assert parsed.to_value() == value
            assert CryptoAttribute.parse(dataclasses.replace(parsed).to_value()) == parsed


def test_rfc4568_examples() -> None:
    sd = parse_sdp(sample("rfc4568_offer.sdp"))
    assert [k for k, _ in sd.extra_lines] == ["i", "u", "e"]
    assert sd.times[0].start == 2873397496
    first = sd.media[0].crypto[0]
    assert first.key + first.salt == base64.b64decode("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz")
    assert first.session_params == ("FEC_ORDER=FEC_SRTP",)
    assert sd.media[1].crypto[0].mki == (1, 32)
    f8 = sd.media[2].crypto[1]
    assert f8.suite == "F8_128_HMAC_SHA1_80" and not f8.is_known
    assert len(f8.extra_key_params) == 1
    assert sd.media[2].is_secure  # thanks to its first, known crypto line


def test_every_line_type_and_bfcp_attributes_are_kept() -> None:
    sd = parse_sdp(sample("bfcp_all_line_types.sdp"))
    assert [k for k, _ in sd.extra_lines] == ["i", "u", "e", "p", "b", "z", "k"]
    assert len(sd.times) == 2 and sd.times[0].repeats == ("7d 1h 0 25h",)
    assert sd.connection == Connection("IN", "IP6", "2001:db8::10")
    assert sd.direction == "recvonly"
    audio, bfcp = sd.media
    assert audio.port_count == 2
    assert [k for k, _ in audio.extra_lines] == ["i", "b", "k"]
    assert audio.connection_address == "2001:db8::11"
    assert audio.direction == "recvonly"  # inherited from the session level
    assert ("x-unknown-flag", None) in audio.attributes
    assert audio.get_attribute("x-vendor") == "some value with spaces"
    assert bfcp.proto == "TCP/TLS/BFCP" and bfcp.formats == ("*",)
    assert bfcp.connection_address == "2001:db8::10"
    assert [name for name, _ in bfcp.attributes][:3] == ["setup", "connection", "fingerprint"]
    assert bfcp.get_attribute("setup") == "actpass"
    assert bfcp.get_attribute("connection") == "new"
    assert bfcp.get_attribute("fingerprint").startswith("SHA-256 9D:C8:")
    assert not bfcp.is_secure


# --------------------------------------------------------------------------------------------
# Malformed SDP: every kind of line
# --------------------------------------------------------------------------------------------

HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
BODY = "c=IN IP4 192.0.2.1\r\nt=0 0\r\n"

# (id, text, line number named in the reason, fragment of the reason)
MALFORMED = [
    ("empty", "", None, "empty"),
    ("not-v-first", "o=- 1 1 IN IP4 192.0.2.1\r\n", 1, "expected 'v='"),
    ("version-1", "v=1\r\no=- 1 1 IN IP4 x\r\ns=-\r\nt=0 0\r\n", 1, "version"),
    ("only-v", "v=0\r\n", None, "missing 'o='"),
    ("s-before-o", "v=0\r\ns=-\r\no=- 1 1 IN IP4 x\r\nt=0 0\r\n", 2, "expected 'o='"),
    ("o-five-fields", "v=0\r\no=- 1 1 IN IP4\r\ns=-\r\nt=0 0\r\n", 2, "o= needs"),
    ("o-sess-id", "v=0\r\no=- x1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\n", 2, "sess-id"),
    ("o-version", "v=0\r\no=- 1 -1 IN IP4 a\r\ns=-\r\nt=0 0\r\n", 2, "sess-version"),
    ("o-nettype", 'v=0\r\no=- 1 1 I"N IP4 a\r\ns=-\r\nt=0 0\r\n', 2, "nettype"),
    ("s-empty", "v=0\r\no=- 1 1 IN IP4 a\r\ns=\r\nt=0 0\r\n", 3, "empty value"),
    ("no-t", HEAD + "c=IN IP4 192.0.2.1\r\n", None, "no 't='"),
    ("no-t-before-m", HEAD + "c=IN IP4 a\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n", 5, "no 't='"),
    ("t-one-field", HEAD + "t=0\r\n", 4, "t= needs"),
    ("t-not-number", HEAD + "t=0 now\r\n", 4, "t= needs"),
    ("r-without-t", HEAD + "r=7d 1h 0\r\nt=0 0\r\n", 4, "'r=' must follow"),
    ("r-after-a", HEAD + "t=0 0\r\na=x\r\nr=7d 1h 0\r\n", 6, "'r=' must follow"),
    ("c-two-fields", HEAD + "c=IN IP4\r\nt=0 0\r\n", 4, "c= needs"),
    ("c-duplicate", HEAD + BODY + "c=IN IP4 192.0.2.2\r\n", 6, "second session-level"),
    ("second-o", HEAD + BODY + "o=- 1 1 IN IP4 a\r\n", 6, "second 'o='"),
    ("second-v", HEAD + BODY + "v=0\r\n", 6, "second 'v='"),
    ("b-no-colon", HEAD + "b=AS64\r\n" + BODY, 4, "b= needs"),
    ("b-not-number", HEAD + BODY + "b=AS:lots\r\n", 6, "b= needs"),
    ("unknown-type", HEAD + BODY + "x=1\r\n", 6, "unknown line type 'x='"),
    ("uppercase-type", HEAD + BODY + "A=1\r\n", 6, "not a '<type>=<value>'"),
    ("no-equals", HEAD + BODY + "a:rtcp-mux\r\n", 6, "not a '<type>=<value>'"),
    ("space-before-equals", HEAD + BODY + "a =x\r\n", 6, "not a '<type>=<value>'"),
    ("one-char", HEAD + BODY + "a\r\n", 6, "not a '<type>=<value>'"),
    ("empty-line", HEAD + "\r\n" + BODY, 4, "empty line"),
    ("trailing-empty-line", HEAD + BODY + "\r\n", 6, "empty line"),
    ("a-empty", HEAD + BODY + "a=\r\n", 6, "empty value"),
    ("a-empty-name", HEAD + BODY + "a=:x\r\n", 6, "attribute name"),
    ("a-bad-name", HEAD + BODY + "a=rtp map:0 PCMU/8000\r\n", 6, "attribute name"),
    ("stray-cr", HEAD + "i=a\rb\r\n" + BODY, 4, "CR"),
    ("nul", HEAD + "i=a\0b\r\n" + BODY, 4, "NUL"),
    ("m-three-fields", HEAD + BODY + "m=audio 4000 RTP/AVP\r\n", 6, "m= needs"),
    ("m-port-text", HEAD + BODY + "m=audio port RTP/AVP 0\r\n", 6, "port"),
    ("m-port-big", HEAD + BODY + "m=audio 65536 RTP/AVP 0\r\n", 6, "port"),
    ("m-port-count", HEAD + BODY + "m=audio 4000/0 RTP/AVP 0\r\n", 6, "number of ports"),
    ("m-bad-proto", HEAD + BODY + "m=audio 4000 RTP//AVP 0\r\n", 6, "proto"),
    ("m-bad-media", HEAD + BODY + "m=au(dio 4000 RTP/AVP 0\r\n", 6, "media"),
    ("m-bad-format", HEAD + BODY + "m=audio 4000 RTP/AVP 0 (8)\r\n", 6, "format"),
    ("t-in-media", HEAD + BODY + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", 7, "not allowed"),
    ("s-in-media", HEAD + BODY + "m=audio 4000 RTP/AVP 0\r\ns=x\r\n", 7, "not allowed"),
    ("z-in-media", HEAD + BODY + "m=audio 4000 RTP/AVP 0\r\nz=0 -1h\r\n", 7, "not allowed"),
    ("media-bad-c", HEAD + BODY + "m=audio 4000 RTP/AVP 0\r\nc=IN\r\n", 7, "c= needs"),
    ("media-bad-b", HEAD + BODY + "m=audio 4000 RTP/AVP 0\r\nb=AS\r\n", 7, "b= needs"),
    ("media-bad-a", HEAD + BODY + "m=audio 4000 RTP/AVP 0\r\na=\tx\r\n", 7, "attribute name"),
    ("no-c", HEAD + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", 5, "without 'c='"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])  # fmt: skip
def test_malformed_sdp_is_refused_with_the_line(text: str, line: int | None, fragment: str) -> None:
    data = text.encode()
    with pytest.raises(SdpParseError) as caught:
        parse_sdp(data)
    error = caught.value
    assert isinstance(error, RemoteProtocolError)
    assert fragment in error.reason
    assert error.status_hint == 400
    assert error.offset is not None and 0 <= error.offset <= len(data)
    if line is not None:
        assert error.reason.startswith(f"line {line}:")
        # The offset points into the named line.
        line_start = sum(len(x) for x in data.splitlines(keepends=True)[: line - 1])
        assert line_start <= error.offset <= line_start + len(data.splitlines()[line - 1])


def test_offset_points_at_the_bad_field() -> None:
    data = (HEAD + BODY + "m=audio 4000 RTP/AVP 0 (8)\r\n").encode()
    with pytest.raises(SdpParseError) as caught:
        parse_sdp(data)
    assert data[caught.value.offset :].startswith(b"(8)")


def test_not_utf8_is_refused_with_its_offset() -> None:
    data = (HEAD + "i=caf").encode() + b"\xe9\r\n" + BODY.encode()
    with pytest.raises(SdpParseError, match="line 4: not UTF-8") as caught:
        parse_sdp(data)
    assert data[caught.value.offset] == 0xE9


def test_unencodable_str_is_a_parse_error() -> None:
    with pytest.raises(SdpParseError):
        parse_sdp(HEAD + "i=\ud800\r\n" + BODY)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_truncation_parses_or_raises_sdp_parse_error(path: Path) -> None:
    data = path.read_bytes()
    for end in range(len(data)):
        try:
            sd = parse_sdp(data[:end])
        except SdpParseError:
            continue
        assert sd.to_bytes().startswith(crlf(data[:end]).rstrip(b"\r\n"))


# --------------------------------------------------------------------------------------------
# a=crypto
# --------------------------------------------------------------------------------------------

K30 = key_text(30)

# (id, value, fragment of the reason, text the offset points at)
BAD_CRYPTO = [
    ("empty", "", "needs '<tag>", None),
    ("two-fields", "1 AES_CM_128_HMAC_SHA1_80", "needs '<tag>", None),
    ("tag-text", f"one AES_CM_128_HMAC_SHA1_80 inline:{K30}", "tag", "one"),
    ("tag-10-digits", f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{K30}", "tag", "1234567890"),
    ("suite-not-token", f"1 AES-CM inline:{K30}", "crypto-suite", "AES-CM"),
    ("no-inline", f"1 AES_CM_128_HMAC_SHA1_80 {K30}", "inline", K30),
    ("other-method", f"1 AES_CM_128_HMAC_SHA1_80 uri:{K30}", "inline", "uri:"),
    ("not-base64", "1 AES_CM_128_HMAC_SHA1_80 inline:****", "base64", "****"),
    ("base64-5-chars", "1 AES_CM_128_HMAC_SHA1_80 inline:AAAAA", "base64", "AAAAA"),
    ("short-key", f"1 AES_CM_128_HMAC_SHA1_80 inline:{key_text(29)}", "needs 30 bytes", None),
    ("long-key", f"1 AES_CM_128_HMAC_SHA1_80 inline:{key_text(31)}", "needs 30 bytes", None),
    ("lifetime-text", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|forever", "lifetime", "forever"),
    ("lifetime-zero", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|0", "lifetime", "0"),
    ("lifetime-huge", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^99999", "large", "2^99999"),
    ("lifetime-digits", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|{'9' * 5000}", "lifetime", None),
    ("mki-no-length", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1", "MKI", "1"),
    ("mki-zero-length", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|1:0", "MKI", "1:0"),
    ("mki-too-big", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|256:1", "MKI", "256:1"),
    ("mki-before-lifetime", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|1:4|2^20", "lifetime", "1:4"),
    ("too-many-fields", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1:4|x", "too many", None),
    ("bad-second-key", f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30};inline:AAAA", "needs 30", None),
]


@pytest.mark.parametrize(("value", "fragment", "at"), [b[1:] for b in BAD_CRYPTO],
                         ids=[b[0] for b in BAD_CRYPTO])  # fmt: skip
def test_malformed_crypto_value(value: str, fragment: str, at: str | None) -> None:
    with pytest.raises(SdpParseError) as caught:
        CryptoAttribute.parse(value)
    assert fragment in caught.value.reason
    assert caught.value.offset is not None
    if at is not None:
        assert value[caught.value.offset :].startswith(at)


def test_crypto_property_names_the_line_of_a_malformed_attribute() -> None:
    data = (HEAD + BODY + "m=audio 4000 RTP/SAVP 0\r\n"
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K30}\r\n"
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n").encode()  # fmt: skip
    sd = parse_sdp(data)  # RFC 8866 is fine with it
    media = sd.media[0]
    with pytest.raises(SdpParseError) as caught:
        media.crypto  # noqa: B018
    assert caught.value.reason.startswith("line 8: a=crypto: ")
    assert data[caught.value.offset :].startswith(b"AAAA\r\n")
    assert media.is_secure  # the good line counts, the bad one is skipped
    # After a change the line numbers are gone, the error still says which attribute.
    changed = media.with_attribute("ptime", "20")
    with pytest.raises(SdpParseError, match=r"attribute 2 of m=audio"):
        changed.crypto  # noqa: B018


def test_crypto_flag_without_value_is_malformed() -> None:
    media = MediaDescription.build(port=4000).with_attribute("crypto")
    with pytest.raises(SdpParseError):
        media.crypto  # noqa: B018
    assert not media.is_secure


@pytest.mark.parametrize("suite", sorted(SRTP_SUITES))
def test_key_length_per_suite(suite: str) -> None:
    info = SRTP_SUITES[suite]
    total = info.key_len + info.salt_len
    good = CryptoAttribute.parse(f"1 {suite} inline:{key_text(total)}")
    assert (len(good.key), len(good.salt)) == (info.key_len, info.salt_len)
    assert good.key + good.salt == base64.b64decode(key_text(total))
    for wrong in (total - 1, total + 1, total - info.salt_len):
        with pytest.raises(SdpParseError, match=f"{suite} needs {total} bytes"):
            CryptoAttribute.parse(f"1 {suite} inline:{key_text(wrong)}")


def test_suite_table() -> None:
    expected = {
        "AES_CM_128_HMAC_SHA1_80": (16, 14, 10, False, "SRTP_PROFILE_AES128_CM_SHA1_80"),
        "AES_CM_128_HMAC_SHA1_32": (16, 14, 4, False, "SRTP_PROFILE_AES128_CM_SHA1_32"),
        "AEAD_AES_128_GCM": (16, 12, 16, False, "SRTP_PROFILE_AEAD_AES_128_GCM"),
        "AEAD_AES_256_GCM": (32, 12, 16, False, "SRTP_PROFILE_AEAD_AES_256_GCM"),
        "NULL_HMAC_SHA1_80": (16, 14, 10, True, None),
        "NULL_HMAC_SHA1_32": (16, 14, 4, True, None),
    }
    got = {
        name: (i.key_len, i.salt_len, i.tag_len, i.null_cipher, i.pylibsrtp_profile)
        for name, i in SRTP_SUITES.items()
    }
    assert got == expected


def test_profile_names_exist_in_pylibsrtp() -> None:
    pylibsrtp = pytest.importorskip("pylibsrtp")
    for info in SRTP_SUITES.values():
        if info.pylibsrtp_profile is not None:
            assert isinstance(getattr(pylibsrtp.Policy, info.pylibsrtp_profile), int)


def test_unpadded_base64_is_accepted() -> None:
    padded = key_text(28)
    assert padded.endswith("=")
    c = CryptoAttribute.parse(f"1 AEAD_AES_128_GCM inline:{padded.rstrip('=')}")
    assert c.key + c.salt == base64.b64decode(padded)
    assert dataclasses.replace(c).to_value() == f"1 AEAD_AES_128_GCM inline:{padded}"


def test_generate_gives_fresh_keys_of_the_right_length() -> None:
    for suite, info in SRTP_SUITES.items():
        a = CryptoAttribute.generate(1, suite)
        b = CryptoAttribute.generate(1, suite)
        assert (len(a.key), len(a.salt)) == (info.key_len, info.salt_len)
        assert a.key + a.salt != b.key + b.salt
        assert CryptoAttribute.parse(a.to_value()) == a
    with pytest.raises(LocalProtocolError):
        CryptoAttribute.generate(1, "ROT13_HMAC")


def test_lifetime_and_mki_are_written_back() -> None:
    c = CryptoAttribute.generate(
        7, "AES_CM_128_HMAC_SHA1_80", lifetime=2**31, mki=(1, 4), session_params=["KDR=4"]
    )
    assert c.to_value().endswith("|2^31|1:4 KDR=4")
    decimal = dataclasses.replace(c, lifetime=1000, mki=None, session_params=())
    assert decimal.to_value().endswith("|1000")


def test_building_checks_unless_unchecked() -> None:
    with pytest.raises(LocalProtocolError, match="16-byte key"):
        CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", b"k" * 15, b"s" * 14)
    with pytest.raises(LocalProtocolError, match="tag"):
        CryptoAttribute(10**9, "AES_CM_128_HMAC_SHA1_80", b"k" * 16, b"s" * 14)
    with pytest.raises(LocalProtocolError, match="MKI"):
        CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", b"k" * 16, b"s" * 14, mki=(256, 1))
    with pytest.raises(LocalProtocolError, match="whitespace"):
        CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", b"k" * 16, b"s" * 14, session_params=["a b"])
    # A step may craft a wrong key length on purpose.
    bad = CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", b"k" * 15, b"s" * 14, unchecked=True)
    with pytest.raises(SdpParseError):
        CryptoAttribute.parse(bad.to_value())


def test_repr_and_str_never_show_keys() -> None:
    data = sample("several_crypto_offer.sdp")
    sd = parse_sdp(data)
    crypto = sd.media[0].crypto
    hidden = re.findall(r"inline:([^|; \r\n]+)", data.decode())
    assert len(hidden) == 8
    hidden += [c.key.hex() for c in crypto] + [c.salt.hex() for c in crypto if c.salt]
    shown = [repr(sd), str(sd), repr(sd.media[0]), repr(crypto)]
    shown += [repr(c) for c in crypto] + [str(c) for c in crypto]
    for text in shown:
        for secret in hidden:
            assert secret not in text
    for c in crypto:
        assert c.fingerprint == hashlib.sha256(c.key + c.salt).hexdigest()[:16]
        assert c.fingerprint in repr(c) and c.fingerprint in str(c)
        assert c.fingerprint in repr(sd)  # the same name for the key everywhere
    assert str(crypto[2]).count("<sha256:") == 2  # the second key-param is hidden too


def test_k_line_key_is_hidden_in_repr() -> None:
    sd = parse_sdp(HEAD + BODY + "k=clear:s3cret-key\r\n")
    assert "s3cret-key" not in repr(sd)
    assert b"k=clear:s3cret-key" in sd.to_bytes()


# --------------------------------------------------------------------------------------------
# Builders and effective values
# --------------------------------------------------------------------------------------------


def test_build_offer_and_parse_it_back() -> None:
    crypto = [
        CryptoAttribute.generate(1, "AEAD_AES_256_GCM"),
        CryptoAttribute.generate(2, "AES_CM_128_HMAC_SHA1_80", lifetime=2**31),
    ]
    audio = MediaDescription.build(
        port=40000,
        formats=["0", "101"],
        attributes=[("rtpmap", "0 PCMU/8000"), ("rtpmap", "101 telephone-event/8000")],
    ).with_crypto(crypto)
    sd = SessionDescription.build("alice", "127.0.0.1", [audio], session_id=42)
    text = sd.to_bytes()
    assert text.startswith(
        b"v=0\r\no=alice 42 42 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    )
    assert text.endswith(b"\r\n")
    parsed = parse_sdp(text)
    assert parsed == sd
    assert parsed.media[0].crypto == crypto
    assert parsed.media[0].is_secure
    assert parsed.media[0].connection_address == "127.0.0.1"


def test_build_ipv6_and_versions() -> None:
    sd = SessionDescription.build("focus", "::1", session_id=5, session_version=9)
    assert sd.origin.addrtype == "IP6" and sd.connection == Connection("IN", "IP6", "::1")
    assert sd.with_next_version().origin.session_version == 10
    assert SessionDescription.build("a", "192.0.2.1").origin.session_id >= 0


def test_with_crypto_replaces_in_place() -> None:
    sd = parse_sdp(sample("phone_sdes_audio_video_offer.sdp"))
    audio = sd.media[0]
    new = CryptoAttribute.generate(9, "AES_CM_128_HMAC_SHA1_80")
    changed = audio.with_crypto([new])
    names = [n for n, _ in changed.attributes]
    assert names.count("crypto") == 1
    assert names.index("crypto") == [n for n, _ in audio.attributes].index("crypto")
    assert changed.crypto == [new]
    assert audio.crypto[0].tag == 1  # the original is untouched
    assert changed.with_crypto([]).crypto == []
    rewritten = sd.with_media_at(0, changed)
    assert rewritten.raw is None
    reparsed = parse_sdp(rewritten.to_bytes())
    assert reparsed.media[0].crypto == [new]
    assert reparsed.media[1] == sd.media[1]


def test_direction_port_connection_helpers() -> None:
    media = MediaDescription.build(port=4000)
    assert media.direction == "sendrecv"
    assert media.connection_address is None
    held = media.with_direction("sendonly").with_direction("inactive")
    assert held.direction == "inactive"
    assert [n for n, _ in held.attributes] == ["inactive"]
    assert media.with_port(0).port == 0
    moved = media.with_connection(Connection("IN", "IP4", "233.252.0.1/127"))
    assert moved.connection_address == "233.252.0.1"
    sd = SessionDescription.build("a", "192.0.2.1", [media], attributes=[("sendonly", None)])
    assert sd.media[0].direction == "sendonly"  # inherited
    assert sd.media[0].connection_address == "192.0.2.1"
    assert sd.with_media([held]).media[0].direction == "inactive"  # media level wins
    assert not media.rtcp_mux and media.with_attribute("rtcp-mux").rtcp_mux
    assert not media.with_attribute("rtcp-mux").without_attribute("rtcp-mux").rtcp_mux


def test_is_secure_needs_savp_and_an_encrypting_known_suite() -> None:
    key = CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80")
    null = CryptoAttribute.generate(1, "NULL_HMAC_SHA1_80")
    unencrypted = CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80",
                                           session_params=["UNENCRYPTED_SRTP"])  # fmt: skip
    unknown = CryptoAttribute(1, "SEED_CTR_128_HMAC_SHA1_80", b"x" * 30, b"")
    savp = MediaDescription.build(port=4000)
    assert savp.with_crypto([key]).is_secure
    assert MediaDescription.build(port=4000, proto="RTP/SAVPF").with_crypto([key]).is_secure
    assert not MediaDescription.build(port=4000, proto="RTP/AVP").with_crypto([key]).is_secure
    assert not savp.is_secure
    assert not savp.with_crypto([null]).is_secure
    assert not savp.with_crypto([unencrypted]).is_secure
    assert not savp.with_crypto([unknown]).is_secure
    assert savp.with_crypto([null, key]).is_secure


@pytest.mark.parametrize(
    "call",
    [
        lambda: MediaDescription.build(port=70000),
        lambda: MediaDescription.build(port=4000, formats=[]),
        lambda: MediaDescription.build(port=4000, formats=["0 8"]),
        lambda: MediaDescription.build("au dio", port=4000),
        lambda: MediaDescription.build(port=4000, proto="RTP /AVP"),
        lambda: MediaDescription.build(port=4000, attributes=[("x", "a\r\nm=evil 1 RTP/AVP 0")]),
        lambda: MediaDescription.build(port=4000).with_attribute("bad name"),
        lambda: MediaDescription.build(port=4000).with_direction("up"),
        lambda: MediaDescription.build(port=4000).with_port(-1),
        lambda: SessionDescription.build("a b", "192.0.2.1"),
        lambda: SessionDescription.build("a", ""),
        lambda: SessionDescription.build("a", "192.0.2.1", session_name=""),
        lambda: SessionDescription.build("a", "192.0.2.1", session_name="x\ny"),
    ],
)
def test_builders_refuse_bad_input(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LocalProtocolError):
        call()


def test_descriptions_are_frozen_and_hashable() -> None:
    sd = parse_sdp(sample("phone_sdes_audio_video_offer.sdp"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        sd.version = 1  # type: ignore[misc]
    assert hash(sd) == hash(parse_sdp(sample("phone_sdes_audio_video_offer.sdp")))


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------

_LINE_TYPES = st.sampled_from([*"vosiuepcbtrzkamx", "", "A", " "])
_VALUES = st.one_of(
    st.sampled_from([
        "0", "- 1 1 IN IP4 192.0.2.1", "IN IP4 192.0.2.1", "0 0", "AS:64", "audio 4000 RTP/SAVP 0",
        "audio 4000/2 RTP/AVP 0 8", "rtcp-mux", "sendonly", "rtpmap:0 PCMU/8000", "-", "7d 1h 0",
        f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1:4",
        f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K30[:-1]}", "crypto:x", "",
    ]),
    st.text(max_size=30),
)  # fmt: skip


@st.composite
def sdp_like(draw: st.DrawFn) -> bytes:
    lines = [f"{t}={v}" for t, v in draw(st.lists(st.tuples(_LINE_TYPES, _VALUES), max_size=14))]
    if draw(st.booleans()):
        lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", *lines]
    end = draw(st.sampled_from(["\r\n", "\n"]))
    return "".join(line + end for line in lines).encode("utf-8", "surrogatepass")


def _sorted_extras(sd: SessionDescription) -> SessionDescription:
    media = [dataclasses.replace(m, extra_lines=sorted(m.extra_lines)) for m in sd.media]
    return dataclasses.replace(sd, extra_lines=sorted(sd.extra_lines), media=media)


def _check_any(data: bytes | str) -> None:
    try:
        sd = parse_sdp(data)
    except SdpParseError as exc:
        assert exc.reason and (exc.offset is None or exc.offset >= 0)
        return
    # Whatever parses survives being written from its fields and parsed again (other than the
    # order of i=/u=/e=/p=/b=/z=/k= lines, which RFC 8866 order may change), and that writing
    # is stable.
    written = dataclasses.replace(sd).to_bytes()
    again = parse_sdp(written)
    assert _sorted_extras(again) == _sorted_extras(sd)
    assert dataclasses.replace(again).to_bytes() == written
    for media in sd.media:
        assert isinstance(media.is_secure, bool)
        try:
            media.crypto  # noqa: B018
        except SdpParseError:
            pass
        repr(media)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_sdp_parse_error(data: bytes) -> None:
    _check_any(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_sdp_parse_error(data: str) -> None:
    _check_any(data)


@settings(max_examples=500, deadline=None)
@given(sdp_like())
def test_sdp_like_input_parses_or_raises_sdp_parse_error(data: bytes) -> None:
    _check_any(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_crypto_value_parses_or_raises_sdp_parse_error(value: str) -> None:
    try:
        c = CryptoAttribute.parse(value)
    except SdpParseError:
        return
    assert c.to_value() == value
    assert CryptoAttribute.parse(dataclasses.replace(c).to_value()) == c


@settings(max_examples=200, deadline=None)
@given(
    suite=st.sampled_from(sorted(SRTP_SUITES)),
    tag=st.integers(0, 999_999_999),
    lifetime=st.none() | st.integers(1, 2**64),
    mki=st.none() | st.integers(1, 4).flatmap(lambda n: st.tuples(st.integers(0, 256**n - 1),
                                                                   st.just(n))),
    params=st.lists(st.sampled_from(["KDR=1", "UNENCRYPTED_SRTCP", "WSH=128"]), max_size=3),
)  # fmt: skip
def test_generated_crypto_round_trips(
    suite: str, tag: int, lifetime: int | None, mki: tuple[int, int] | None, params: list[str]
) -> None:
    c = CryptoAttribute.generate(tag, suite, lifetime=lifetime, mki=mki, session_params=params)
    assert CryptoAttribute.parse(c.to_value()) == c
