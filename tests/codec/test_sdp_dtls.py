"""confsec.codec.sdp DTLS-SRTP: a=fingerprint (RFC 8122), a=setup (RFC 4145, RFC 5763), a=tls-id
(RFC 8842) and the UDP/TLS/RTP/SAVP(F) protos (RFC 5764 §8), on real-world offers and by hand."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from confsec.codec.sdp import (
    DTLS_SRTP_PROTOS,
    HASH_LENGTHS,
    CryptoAttribute,
    FingerprintAttribute,
    MediaDescription,
    SdpParseError,
    SessionDescription,
    SetupRole,
    answer_role,
    certificate_matches,
    dtls_role,
    new_tls_id,
    parse_sdp,
    parse_tls_id,
)
from confsec.errors import LocalProtocolError, RemoteProtocolError
from confsec.media.dtls_records import self_signed_identity
from confsec.pki import fingerprint_sha256


def hx(n: int, seed: str = "fp") -> str:
    """n bytes as an RFC 8122 fingerprint text (upper-case hex joined by ':')."""
    digest = hashlib.sha512(seed.encode()).digest() * 2
    return ":".join(f"{b:02X}" for b in digest[:n])


FP1 = "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"  # RFC 8122 §3.4
FP32 = hx(32)
FP32_OTHER = hx(32, "other")
DIGEST32 = bytes.fromhex(FP32.replace(":", ""))
TLS_ID = "91bbf309c0990a6bec11e38ba2933cee"  # the JSEP example's tls-id

# Firefox-style WebRTC offer: a=fingerprint at session level (as Firefox writes it), a=setup and
# a=tls-id in each media section; every other line is kept but not interpreted.
WEBRTC_OFFER = (
    "v=0\r\n"
    "o=mozilla...THIS_IS_SDPARTA-128.0 6270727806473165412 0 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    f"a=fingerprint:sha-256 {FP32}\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "a=ice-options:trickle\r\n"
    "a=msid-semantic:WMS *\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=sendrecv\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ice-pwd:e7eb2f9d1a4a37b5f8b0b6a3d2c9e1f0\r\n"
    "a=ice-ufrag:3f1c2b7a\r\n"
    "a=mid:0\r\n"
    "a=msid:{5e1b2c4d-6f70-4a1b-9c2d-3e4f5a6b7c8d} {0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:109 opus/48000/2\r\n"
    "a=rtpmap:9 G722/8000/1\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000/1\r\n"
    "a=setup:actpass\r\n"
    f"a=tls-id:{TLS_ID}\r\n"
    "a=ssrc:2655508255 cname:{735484ea-4f6c-4b7d-8b0e-5f0c8d6a1e2f}\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 120 124\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=recvonly\r\n"
    "a=fmtp:120 max-fs=12288;max-fr=60\r\n"
    "a=fmtp:124 apt=120\r\n"
    "a=ice-pwd:e7eb2f9d1a4a37b5f8b0b6a3d2c9e1f0\r\n"
    "a=ice-ufrag:3f1c2b7a\r\n"
    "a=mid:1\r\n"
    "a=rtcp-fb:120 nack\r\n"
    "a=rtcp-fb:120 nack pli\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    "a=rtpmap:120 VP8/90000\r\n"
    "a=rtpmap:124 rtx/90000\r\n"
    "a=setup:actpass\r\n"
    f"a=tls-id:{TLS_ID}\r\n"
).encode()

# A SIP phone's offer (RFC 5763 style): UDP/TLS/RTP/SAVP, a=fingerprint per media with an
# upper-case SHA-1 next to a SHA-256 (RFC 8122 §5.1), no tls-id (pre-RFC 8842 stacks omit it).
SIP_OFFER = (
    "v=0\r\n"
    "o=1001 3724394400 3724394401 IN IP4 192.0.2.45\r\n"
    "s=SIP Call\r\n"
    "c=IN IP4 192.0.2.45\r\n"
    "t=0 0\r\n"
    "m=audio 11780 UDP/TLS/RTP/SAVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
    "a=setup:actpass\r\n"
    "a=connection:new\r\n"
    f"a=fingerprint:SHA-1 {FP1}\r\n"
    f"a=fingerprint:SHA-256 {FP32}\r\n"
    "m=video 11782 UDP/TLS/RTP/SAVP 96\r\n"
    "b=TIAS:2048000\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 profile-level-id=42801F; packetization-mode=1\r\n"
    "a=setup:actpass\r\n"
    f"a=fingerprint:SHA-256 {FP32}\r\n"
).encode()

# The answer from the other side: RFC 5763 §5 recommends setup:active.
SIP_ANSWER = (
    "v=0\r\n"
    "o=- 42 42 IN IP4 198.51.100.7\r\n"
    "s=-\r\n"
    "c=IN IP4 198.51.100.7\r\n"
    "t=0 0\r\n"
    "a=setup:active\r\n"
    f"a=fingerprint:sha-256 {FP32_OTHER}\r\n"
    "m=audio 30000 UDP/TLS/RTP/SAVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "m=video 30002 UDP/TLS/RTP/SAVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\n"
).encode()

SAMPLES = {"webrtc_offer": WEBRTC_OFFER, "sip_offer": SIP_OFFER, "sip_answer": SIP_ANSWER}

HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def self_signed(name: str = "confsec-dtls") -> bytes:
    """A fresh self-signed EC P-256 certificate (DER), as a DTLS-SRTP endpoint makes one."""
    cert, _, _ = self_signed_identity(name)
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def cert() -> bytes:
    return self_signed()


@pytest.fixture(scope="module")
def other_cert() -> bytes:
    return self_signed("somebody-else")


# --------------------------------------------------------------------------------------------
# Real-world offers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_dtls_offers_round_trip_byte_for_byte(name: str) -> None:
    data = SAMPLES[name]
    sd = parse_sdp(data)
    assert sd.to_bytes() == data
    # Reading the DTLS attributes changes nothing.
    for media in sd.media:
        media.fingerprints, media.setup, media.tls_id  # noqa: B018
    assert sd.to_bytes() == data
    # Written from the fields (these samples are in RFC 8866 order), nothing moves either.
    assert dataclasses.replace(sd).to_bytes() == data
    # LF-only input comes back with CRLF, otherwise identical.
    assert parse_sdp(data.replace(b"\r\n", b"\n")).to_bytes() == data


def test_webrtc_offer() -> None:
    sd = parse_sdp(WEBRTC_OFFER)
    assert sd.fingerprints == [FingerprintAttribute("sha-256", DIGEST32)]
    assert sd.setup is None
    audio, video = sd.media
    for media in (audio, video):
        assert media.is_dtls_srtp
        assert not media.has_attribute("fingerprint")
        assert media.fingerprints == sd.fingerprints  # RFC 8122 §5: the session level applies
        assert media.setup == "actpass" and media.setup is SetupRole.ACTPASS
        assert media.tls_id == TLS_ID
        assert media.rtcp_mux
        assert media.crypto == []
        assert not media.is_secure  # SDES only; DTLS-SRTP is judged by is_dtls_srtp
    (fingerprint,) = audio.fingerprints
    assert fingerprint.hash_function == "sha-256" and len(fingerprint.fingerprint) == 32
    assert fingerprint.is_known and fingerprint.is_acceptable_hash
    assert not fingerprint.is_legacy_hash
    assert fingerprint.to_value() == f"sha-256 {FP32}"
    assert audio.direction == "sendrecv" and video.direction == "recvonly"
    assert audio.get_attribute("mid") == "0"
    assert answer_role(audio.setup) == "active" and dtls_role(answer_role(audio.setup)) == "client"


def test_sip_offer_and_answer() -> None:
    offer = parse_sdp(SIP_OFFER)
    assert offer.fingerprints == [] and offer.setup is None
    audio, video = offer.media
    assert (audio.proto, video.proto) == ("UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVP")
    assert audio.is_dtls_srtp and video.is_dtls_srtp
    sha1, sha256 = audio.fingerprints
    assert sha1.hash_function == "sha-1"  # "SHA-1" on the wire: hash-func ignores case
    assert sha1.raw == f"SHA-1 {FP1}" and sha1.to_value() == f"SHA-1 {FP1}"
    assert sha1.fingerprint.hex(":").upper() == FP1
    assert sha1.is_acceptable_hash and sha1.is_legacy_hash
    assert sha256.hash_function == "sha-256" and not sha256.is_legacy_hash
    assert video.fingerprints == [sha256]
    assert audio.setup is SetupRole.ACTPASS and video.setup is SetupRole.ACTPASS
    assert audio.get_attribute("connection") == "new"
    assert audio.tls_id is None and video.tls_id is None

    answer = parse_sdp(SIP_ANSWER)
    assert answer.setup is SetupRole.ACTIVE
    for offered, answered in zip(offer.media, answer.media, strict=True):
        assert answered.setup == answer_role(offered.setup)  # session-level a=setup applies
        assert dtls_role(answered.setup) == "client"  # so the offerer is the DTLS server
        assert answered.fingerprints == answer.fingerprints


def test_is_dtls_srtp_is_the_proto_in_any_case() -> None:
    assert DTLS_SRTP_PROTOS == {"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"}
    for proto, expected in [
        ("UDP/TLS/RTP/SAVP", True),
        ("UDP/TLS/RTP/SAVPF", True),
        ("udp/tls/rtp/savpf", True),
        ("Udp/Tls/Rtp/Savp", True),
        ("RTP/SAVP", False),
        ("RTP/SAVPF", False),
        ("RTP/AVP", False),
        ("TCP/TLS/BFCP", False),
        ("UDP/TLS/RTP/SAVPFX", False),
    ]:
        assert MediaDescription.build(port=4000, proto=proto).is_dtls_srtp is expected, proto


# --------------------------------------------------------------------------------------------
# a=fingerprint values
# --------------------------------------------------------------------------------------------

# (id, value, fragment of the reason, text the offset points at)
BAD_FINGERPRINTS = [
    ("empty", "", "a=fingerprint needs '<hash-func> <fingerprint>'", ""),
    ("hash-only", "sha-256", "a=fingerprint needs '<hash-func> <fingerprint>'", ""),
    ("tab", f"sha-256\t{FP32}", "a=fingerprint needs '<hash-func> <fingerprint>'", ""),
    ("no-fingerprint", "sha-256 ", "the fingerprint is empty", ""),
    ("leading-space", f" sha-256 {FP32}", "hash-func '' is not a token", " sha-256"),
    ("hash-not-token", f"sha(256) {FP32}", "hash-func 'sha(256)' is not a token", "sha(256)"),
    ("double-space", f"sha-256  {FP32}", "whitespace in or after the fingerprint", f" {FP32}"),
    ("trailing-text", f"sha-256 {FP32} x", "whitespace in or after the fingerprint", " x"),
    ("trailing-space", f"sha-256 {FP32} ", "whitespace in or after the fingerprint", " "),
    ("space-inside", "sha-1 4A: AD", "whitespace in or after the fingerprint", " AD"),
    ("odd-digits", f"sha-256 ABC:{FP32[3:]}", "byte 'ABC' is not two hex digits", "ABC"),
    ("one-digit", f"sha-256 A:{FP32[3:]}", "fingerprint byte 'A' is not two hex digits", "A:"),
    ("no-colons", f"sha-256 {DIGEST32.hex().upper()}", "is not two hex digits", FP32[:2]),
    ("non-hex", f"sha-256 {FP32[:3]}GZ{FP32[5:]}", "fingerprint byte 'GZ' is not hex", "GZ"),
    ("unicode-digits", "sha-1 \u0664\u0662", "is not hex", "\u0664"),
    ("lower-case", f"sha-256 {FP32.lower()}", "lower-case hex (RFC 8122 §5: upper case", None),
    ("mixed-case", f"sha-256 {FP32[:3]}aB{FP32[5:]}", "byte 'aB' is lower-case hex", "aB"),
    ("empty-byte", f"sha-256 {FP32[:2]}::{FP32[3:]}", "empty byte in the fingerprint", ":"),
    ("trailing-colon", f"sha-256 {FP32}:", "empty byte in the fingerprint", ""),
    ("leading-colon", f"sha-256 :{FP32}", "empty byte in the fingerprint", ":"),
    ("sha-1-short", f"sha-1 {hx(19)}", "sha-1 fingerprints are 20 bytes, got 19", None),
    ("sha-1-given-32", f"SHA-1 {FP32}", "sha-1 fingerprints are 20 bytes, got 32", FP32),
    ("sha-224-long", f"sha-224 {hx(29)}", "sha-224 fingerprints are 28 bytes, got 29", None),
    ("sha-256-short", f"SHA-256 {hx(31)}", "sha-256 fingerprints are 32 bytes, got 31", None),
    ("sha-256-long", f"sha-256 {hx(33)}", "sha-256 fingerprints are 32 bytes, got 33", None),
    ("sha-384-short", f"sha-384 {FP32}", "sha-384 fingerprints are 48 bytes, got 32", None),
    ("sha-512-short", f"sha-512 {hx(48)}", "sha-512 fingerprints are 64 bytes, got 48", None),
    ("md5-long", f"md5 {FP1}", "md5 fingerprints are 16 bytes, got 20", FP1),
    ("md2-short", f"MD2 {hx(15)}", "md2 fingerprints are 16 bytes, got 15", None),
]


@pytest.mark.parametrize(("value", "fragment", "at"), [b[1:] for b in BAD_FINGERPRINTS],
                         ids=[b[0] for b in BAD_FINGERPRINTS])  # fmt: skip
def test_malformed_fingerprint_value(value: str, fragment: str, at: str | None) -> None:
    with pytest.raises(SdpParseError) as caught:
        FingerprintAttribute.parse(value)
    error = caught.value
    assert isinstance(error, RemoteProtocolError) and error.status_hint == 400
    assert fragment in error.reason
    assert error.offset is not None and 0 <= error.offset <= len(value)
    if at is not None:
        assert value[error.offset :].startswith(at)


@pytest.mark.parametrize(
    ("value", "hash_function", "length"),
    [
        (f"sha-1 {FP1}", "sha-1", 20),
        (f"sha-224 {hx(28)}", "sha-224", 28),
        (f"sha-256 {FP32}", "sha-256", 32),
        (f"Sha-256 {FP32}", "sha-256", 32),
        (f"sha-384 {hx(48)}", "sha-384", 48),
        (f"SHA-512 {hx(64)}", "sha-512", 64),
        (f"md5 {hx(16)}", "md5", 16),
        (f"MD2 {hx(16)}", "md2", 16),
        ("sha3-256 0A", "sha3-256", 1),  # an unregistered token: any length
        (f"x-vendor-hash {FP32}:{FP1}", "x-vendor-hash", 52),
    ],
)
def test_wellformed_fingerprint_value(value: str, hash_function: str, length: int) -> None:
    parsed = FingerprintAttribute.parse(value)
    assert parsed.hash_function == hash_function
    assert len(parsed.fingerprint) == length
    assert parsed.to_value() == value  # as received
    assert parsed.is_known is (hash_function in HASH_LENGTHS)
    assert parsed.is_acceptable_hash is hash_function.startswith("sha-")
    rebuilt = dataclasses.replace(parsed)  # drops raw: written from the fields
    assert rebuilt.to_value() == f"{hash_function} {value.split(' ', 1)[1]}"
    assert FingerprintAttribute.parse(rebuilt.to_value()) == parsed


def test_hash_lengths_table() -> None:
    assert dict(HASH_LENGTHS) == {
        "sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64,
        "md5": 16, "md2": 16,
    }  # fmt: skip
    for name, length in HASH_LENGTHS.items():
        if name.startswith("sha"):
            assert hashlib.new(name.replace("-", "")).digest_size == length
    with pytest.raises(TypeError):
        HASH_LENGTHS["sha3-256"] = 32  # type: ignore[index]


def test_md2_and_md5_are_not_acceptable() -> None:
    for name in ("md5", "MD5", "md2"):
        parsed = FingerprintAttribute.parse(f"{name} {hx(16)}")
        assert parsed.is_known and not parsed.is_acceptable_hash and not parsed.is_legacy_hash
        with pytest.raises(LocalProtocolError, match="MUST NOT be used to compute or verify"):
            parsed.matches(b"\x30\x03\x02\x01\x00")


def test_building_checks_unless_unchecked() -> None:
    digest = bytes(range(32))
    built = FingerprintAttribute("SHA-256", digest)
    assert built.hash_function == "sha-256"
    assert built.to_value() == "sha-256 " + ":".join(f"{b:02X}" for b in digest)
    assert re.fullmatch(r"sha-256 [0-9A-F]{2}(:[0-9A-F]{2}){31}", built.to_value())
    assert FingerprintAttribute("sha-256", bytearray(digest)) == built
    for args, message in [
        (("sha-256", digest[:31]), "sha-256 fingerprints are 32 bytes, got 31"),
        (("sha-1", digest), "sha-1 fingerprints are 20 bytes, got 32"),
        (("md5", digest[:16]), "md5 MUST NOT be used (RFC 8122 §5)"),
        (("MD2", digest[:16]), "md2 MUST NOT be used"),
        (("x-hash", b""), "the fingerprint is empty"),
        (("sha 256", digest), "hash function 'sha 256' is not a token"),
        (("", digest), "hash function '' is not a token"),
    ]:
        with pytest.raises(LocalProtocolError) as caught:
            FingerprintAttribute(*args)
        assert str(caught.value).startswith(f"invalid a=fingerprint: {message}"), args
    # A step may send a bad one on purpose; the hash name is then kept as given.
    bad = FingerprintAttribute("SHA-256", digest[:31], unchecked=True)
    assert bad.to_value().startswith("SHA-256 00:01:")
    with pytest.raises(SdpParseError, match="32 bytes, got 31"):
        FingerprintAttribute.parse(bad.to_value())
    md5 = FingerprintAttribute("md5", digest[:16], unchecked=True)
    assert FingerprintAttribute.parse(md5.to_value()) == md5


def test_repr_is_short() -> None:
    parsed = FingerprintAttribute.parse(f"SHA-512 {hx(64)}")
    text = repr(parsed)
    assert text == f"FingerprintAttribute('sha-512', {hx(64)[:11]}...{hx(64)[-5:]} <64 bytes>)"
    assert len(text) < 80
    short = FingerprintAttribute.parse("x 0A:0B")
    assert repr(short) == "FingerprintAttribute('x', 0A:0B <2 bytes>)"
    assert str(parsed) == parsed.to_value()


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------


def test_fingerprint_of_a_real_certificate(cert: bytes, other_cert: bytes) -> None:
    loaded = x509.load_der_x509_certificate(cert)
    for name, algorithm in [
        ("sha-1", hashes.SHA1()),
        ("sha-224", hashes.SHA224()),
        ("sha-256", hashes.SHA256()),
        ("sha-384", hashes.SHA384()),
        ("sha-512", hashes.SHA512()),
    ]:
        fingerprint = FingerprintAttribute.of_certificate(cert, name)
        assert fingerprint.fingerprint == loaded.fingerprint(algorithm)
        assert fingerprint.matches(cert)
        assert not fingerprint.matches(other_cert)
        assert FingerprintAttribute.parse(fingerprint.to_value()).matches(cert)
    default = FingerprintAttribute.of_certificate(cert)
    assert default.hash_function == "sha-256"
    assert default.to_value() == f"sha-256 {fingerprint_sha256(cert)}"  # the suite's own form
    assert FingerprintAttribute.of_certificate(cert, "SHA-256") == default
    # Through SDP, as a peer would announce it.
    sd = parse_sdp(HEAD + f"m=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:{default}\r\n")
    assert sd.media[0].fingerprints[0].matches(cert)
    # One flipped bit is a mismatch.
    flipped = bytes([default.fingerprint[0] ^ 1]) + default.fingerprint[1:]
    assert not FingerprintAttribute("sha-256", flipped).matches(cert)


def test_matches_refuses_what_it_cannot_judge(cert: bytes) -> None:
    pem = x509.load_der_x509_certificate(cert).public_bytes(serialization.Encoding.PEM)
    fingerprint = FingerprintAttribute.of_certificate(cert)
    for der, message in [
        (pem, "PEM given where a DER certificate is expected"),
        (b"", "not a DER certificate"),
        (b"\x02\x01\x00", "not a DER certificate"),
        ("30", "a DER certificate is bytes, not str"),
    ]:
        with pytest.raises(LocalProtocolError, match=re.escape(message)):
            fingerprint.matches(der)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="cannot compute 'sha3-256' fingerprints"):
        FingerprintAttribute.parse(f"sha3-256 {FP32}").matches(cert)
    for name in ("md5", "md2"):
        with pytest.raises(LocalProtocolError, match=f"{name} MUST NOT be used"):
            FingerprintAttribute.of_certificate(cert, name)
    with pytest.raises(LocalProtocolError, match="cannot compute 'blake2b' fingerprints"):
        FingerprintAttribute.of_certificate(cert, "blake2b")
    assert FingerprintAttribute.of_certificate(bytearray(cert)).matches(memoryview(cert))


def test_certificate_matches_uses_the_strongest_hash(cert: bytes, other_cert: bytes) -> None:
    """RFC 8122 §5.1: check the fingerprints of the most secure hash; ignore md2/md5."""
    sha1 = FingerprintAttribute.of_certificate(cert, "sha-1")
    sha256 = FingerprintAttribute.of_certificate(cert, "sha-256")
    sha512 = FingerprintAttribute.of_certificate(cert, "sha-512")
    other256 = FingerprintAttribute.of_certificate(other_cert, "sha-256")
    md5 = FingerprintAttribute("md5", hashlib.md5(cert).digest(), unchecked=True)
    assert certificate_matches([sha1, sha256], cert)
    assert certificate_matches([other256, sha256], cert)  # one of several certificates
    assert not certificate_matches([sha1, other256], cert)  # sha-256 decides, and it differs
    assert certificate_matches([sha1, other256, sha512], cert)  # sha-512 decides
    assert not certificate_matches([md5], cert)  # MUST NOT be verified
    assert certificate_matches([md5, sha1], cert)
    assert not certificate_matches([FingerprintAttribute.parse(f"sha3-256 {FP32}")], cert)
    assert not certificate_matches([], cert)
    assert certificate_matches(iter([sha256]), cert)


# --------------------------------------------------------------------------------------------
# a=setup
# --------------------------------------------------------------------------------------------

ANSWER_ROLES = [
    ("actpass", "active"),  # RFC 5763 §5: active is RECOMMENDED (SHOULD)
    ("active", "passive"),
    ("passive", "active"),
    ("holdconn", "holdconn"),
]


@pytest.mark.parametrize(("offer", "answer"), ANSWER_ROLES)
def test_answer_role_table(offer: str, answer: str) -> None:
    assert answer_role(offer) == answer
    assert answer_role(SetupRole(offer)) is SetupRole(answer)
    assert answer_role(offer.upper()) is SetupRole(answer)


def test_dtls_role_table() -> None:
    assert dtls_role("active") == "client"
    assert dtls_role(SetupRole.PASSIVE) == "server"
    assert dtls_role("PASSIVE") == "server"
    for role in ("actpass", "holdconn"):
        with pytest.raises(LocalProtocolError, match=f"setup:{role} decides no DTLS role"):
            dtls_role(role)
    for bad in ("client", "", None, 1):
        with pytest.raises(LocalProtocolError, match="is not an a=setup role"):
            dtls_role(bad)  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError, match="is not an a=setup role"):
            answer_role(bad)  # type: ignore[arg-type]


def test_setup_role_parse() -> None:
    assert [str(r) for r in SetupRole] == ["active", "passive", "actpass", "holdconn"]
    for text in ("actpass", "ACTPASS", "ActPass"):  # ABNF strings ignore case (RFC 5234 §2.3)
        role = SetupRole.parse(text)
        assert role is SetupRole.ACTPASS and role == "actpass" and f"{role}" == "actpass"
    with pytest.raises(SdpParseError) as caught:
        SetupRole.parse("")
    assert (caught.value.reason, caught.value.offset) == ("a=setup needs a role", 0)
    for text in ("listen", " active", "active ", "act\u0131ve", "passive;x"):
        with pytest.raises(SdpParseError) as caught:
            SetupRole.parse(text)
        assert caught.value.reason == (
            f"setup role {text!r} is not active, passive, actpass or holdconn (RFC 4145 §4)"
        )
        assert caught.value.offset == 0


def test_setup_levels_and_errors() -> None:
    data = (HEAD + "a=setup:passive\r\n"
            "m=audio 4000 UDP/TLS/RTP/SAVP 0\r\n"
            "m=audio 4002 UDP/TLS/RTP/SAVP 0\r\na=setup:ACTIVE\r\n"
            "m=audio 4004 UDP/TLS/RTP/SAVP 0\r\na=setup:listen\r\n"
            "m=audio 4006 UDP/TLS/RTP/SAVP 0\r\na=setup:active\r\na=setup:active\r\n"
            "m=audio 4008 UDP/TLS/RTP/SAVP 0\r\na=setup\r\n").encode()  # fmt: skip
    sd = parse_sdp(data)
    inherited, own, unknown, twice, empty = sd.media
    assert sd.setup is SetupRole.PASSIVE
    assert inherited.setup is SetupRole.PASSIVE  # RFC 4145 §4: session level applies
    assert own.setup is SetupRole.ACTIVE  # media level wins, and is normalised
    assert own.get_attribute("setup") == "ACTIVE"  # the line itself is kept as received
    with pytest.raises(SdpParseError) as caught:
        unknown.setup  # noqa: B018
    assert caught.value.reason == (
        "line 11: a=setup: setup role 'listen' is not active, passive, actpass or holdconn "
        "(RFC 4145 §4)"
    )
    assert data[caught.value.offset :].startswith(b"listen\r\n")
    with pytest.raises(SdpParseError) as caught:
        twice.setup  # noqa: B018
    assert caught.value.reason == "line 14: a=setup: more than one a=setup"
    assert data[caught.value.offset - len("a=setup:") :].startswith(b"a=setup:active\r\nm=")
    with pytest.raises(SdpParseError, match=r"^line 16: a=setup: a=setup needs a role at byte"):
        empty.setup  # noqa: B018
    # The rest of each description is still readable.
    assert [m.port for m in sd.media] == [4000, 4002, 4004, 4006, 4008]
    assert unknown.fingerprints == [] and unknown.tls_id is None
    # A bad session-level a=setup is named by its index (the parser keeps no session lines).
    bad_session = parse_sdp(HEAD + "a=setup:sideways\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\n")
    with pytest.raises(SdpParseError, match=r"^a=setup \(session-level attribute 1\): setup"):
        bad_session.media[0].setup  # noqa: B018
    assert bad_session.media[0].with_setup("active").setup is SetupRole.ACTIVE


# --------------------------------------------------------------------------------------------
# a=tls-id
# --------------------------------------------------------------------------------------------

TLS_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a" * 19, False),
        ("a" * 20, True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("", False),
        (TLS_ID_ALPHABET, True),
        ("+/-_" * 5, True),
        (TLS_ID, True),
    ],
    ids=["19", "20", "255", "256", "empty", "alphabet", "symbols", "jsep"],
)
def test_tls_id_length_bounds(value: str, ok: bool) -> None:
    if ok:
        assert parse_tls_id(value) == value
        return
    with pytest.raises(SdpParseError) as caught:
        parse_tls_id(value)
    assert caught.value.reason == (
        f"tls-id has {len(value)} characters, RFC 8842 §4 needs 20 to 255"
    )


@pytest.mark.parametrize("bad", ["=", ".", " ", ":", "~", "\u00e9", "\u0661", "\t", "%"])
def test_tls_id_bad_character(bad: str) -> None:
    value = "a" * 10 + bad + "a" * 10
    with pytest.raises(SdpParseError) as caught:
        parse_tls_id(value)
    assert caught.value.reason == (
        f"tls-id character {bad!r} is not A-Z, a-z, 0-9, '+', '/', '-' or '_'"
    )
    assert caught.value.offset == 10


def test_new_tls_id_is_fresh_and_well_formed() -> None:
    ids = {new_tls_id() for _ in range(200)}
    assert len(ids) == 200
    for tls_id in ids:
        assert parse_tls_id(tls_id) == tls_id
        assert len(tls_id) == 32  # 24 random bytes: 192 bits, RFC 8842 asks for >= 120


def test_tls_id_on_media() -> None:
    data = (HEAD + f"a=tls-id:{TLS_ID}\r\n"
            "m=audio 4000 UDP/TLS/RTP/SAVP 0\r\n"
            f"m=audio 4002 UDP/TLS/RTP/SAVP 0\r\na=tls-id:{TLS_ID}=\r\n"
            f"m=audio 4004 UDP/TLS/RTP/SAVP 0\r\na=tls-id:{TLS_ID}\r\na=tls-id:{'b' * 20}\r\n"
            "m=audio 4006 UDP/TLS/RTP/SAVP 0\r\na=tls-id:short\r\n").encode()  # fmt: skip
    sd = parse_sdp(data)
    session_level, padded, twice, short = sd.media
    assert session_level.tls_id is None  # a media-level attribute: not inherited
    with pytest.raises(SdpParseError) as caught:
        padded.tls_id  # noqa: B018
    assert caught.value.reason.startswith("line 9: a=tls-id: tls-id character '='")
    assert data[caught.value.offset :].startswith(b"=\r\n")
    with pytest.raises(SdpParseError, match=r"^line 12: a=tls-id: more than one a=tls-id at"):
        twice.tls_id  # noqa: B018
    with pytest.raises(SdpParseError, match=r"^line 14: a=tls-id: tls-id has 5 characters"):
        short.tls_id  # noqa: B018
    assert short.setup is None and short.is_dtls_srtp


# --------------------------------------------------------------------------------------------
# A malformed attribute stays where it is
# --------------------------------------------------------------------------------------------


def test_malformed_fingerprint_leaves_the_rest_readable() -> None:
    good = f"sha-256 {FP32}"
    key = CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80").to_value()
    data = (HEAD + f"a=fingerprint:{good}\r\n"
            "m=audio 4000 UDP/TLS/RTP/SAVPF 0\r\n"
            f"a=fingerprint:{good}\r\n"
            "a=fingerprint:sha-256 AB:CD\r\n"
            "a=setup:actpass\r\n"
            f"a=tls-id:{TLS_ID}\r\n"
            f"a=crypto:{key}\r\n"
            "m=video 4002 UDP/TLS/RTP/SAVPF 96\r\n").encode()  # fmt: skip
    sd = parse_sdp(data)  # RFC 8866 is fine with it
    assert sd.to_bytes() == data
    audio, video = sd.media
    with pytest.raises(SdpParseError) as caught:
        audio.fingerprints  # noqa: B018
    assert caught.value.reason == (
        "line 9: a=fingerprint: sha-256 fingerprints are 32 bytes, got 2"
    )
    assert data[caught.value.offset :].startswith(b"AB:CD\r\n")
    assert audio.setup is SetupRole.ACTPASS and audio.tls_id == TLS_ID
    assert len(audio.crypto) == 1 and audio.is_dtls_srtp
    assert video.fingerprints == [FingerprintAttribute.parse(good)]  # from the session
    assert sd.fingerprints == video.fingerprints
    # After a change the line numbers are gone; the error still says which attribute.
    changed = audio.with_attribute("ptime", "20")
    with pytest.raises(SdpParseError, match=r"^a=fingerprint \(attribute 2 of m=audio\): sha-256"):
        changed.fingerprints  # noqa: B018
    # Replacing the fingerprints repairs it, in place.
    repaired = audio.with_fingerprints([FingerprintAttribute.parse(good)])
    assert [n for n, _ in repaired.attributes][:2] == ["fingerprint", "setup"]
    assert repaired.fingerprints == [FingerprintAttribute.parse(good)]


def test_malformed_session_fingerprint_is_named_by_media_and_session() -> None:
    data = (HEAD + "a=fingerprint:sha-1 4a:ad\r\n"
            "m=audio 4000 UDP/TLS/RTP/SAVP 0\r\n"
            "m=audio 4002 UDP/TLS/RTP/SAVP 0\r\n"
            f"a=fingerprint:sha-256 {FP32}\r\n").encode()  # fmt: skip
    sd = parse_sdp(data)
    inherited, own = sd.media
    for holder in (sd, inherited):
        with pytest.raises(SdpParseError) as caught:
            holder.fingerprints  # noqa: B018
        assert caught.value.reason == (
            "a=fingerprint (session-level attribute 1): fingerprint byte '4a' is lower-case hex "
            "(RFC 8122 §5: upper case, UHEX)"
        )
    assert own.fingerprints[0].hash_function == "sha-256"  # its own: the session's is not used
    with pytest.raises(SdpParseError, match="needs '<hash-func> <fingerprint>'"):
        MediaDescription.build(port=4000).with_attribute("fingerprint").fingerprints  # noqa: B018


# --------------------------------------------------------------------------------------------
# Building a DTLS-SRTP offer
# --------------------------------------------------------------------------------------------


def test_build_dtls_offer_and_parse_it_back(cert: bytes) -> None:
    fingerprint = FingerprintAttribute.of_certificate(cert)
    tls_id = new_tls_id()
    audio = (
        MediaDescription.build(port=40000, proto="UDP/TLS/RTP/SAVPF", formats=["111"],
                               attributes=[("rtpmap", "111 opus/48000/2"), ("rtcp-mux", None)])
        .with_setup(SetupRole.ACTPASS)
        .with_tls_id(tls_id)
    )  # fmt: skip
    assert audio.fingerprints == []  # not in a session yet
    sd = SessionDescription.build("focus", "192.0.2.5", [audio], session_id=7).with_fingerprints(
        [fingerprint]
    )
    text = sd.to_bytes()
    assert f"a=fingerprint:sha-256 {fingerprint_sha256(cert)}\r\n".encode() in text
    assert b"a=setup:actpass\r\n" in text and f"a=tls-id:{tls_id}\r\n".encode() in text
    parsed = parse_sdp(text)
    assert parsed == sd
    (media,) = parsed.media
    assert media.fingerprints == [fingerprint] and media.fingerprints[0].matches(cert)
    assert media.setup is SetupRole.ACTPASS and media.tls_id == tls_id and media.is_dtls_srtp
    assert parse_sdp(text).to_bytes() == text

    # The answerer's side: its role, its certificate, a fresh tls-id, per media.
    answer_media = (
        parsed.media[0]
        .with_setup(answer_role(media.setup))
        .with_fingerprints([FingerprintAttribute.of_certificate(self_signed("answerer"))])
        .with_tls_id(new_tls_id())
    )
    assert answer_media.setup is SetupRole.ACTIVE and dtls_role(answer_media.setup) == "client"
    names = [n for n, _ in answer_media.attributes]
    assert names.count("setup") == names.count("tls-id") == names.count("fingerprint") == 1
    assert names.index("setup") == [n for n, _ in media.attributes].index("setup")  # in place
    assert answer_media.with_setup(None).setup is None
    assert answer_media.with_tls_id(None).tls_id is None
    # Without media-level fingerprints the session's apply again (RFC 8122 §5).
    assert answer_media.with_fingerprints([]).fingerprints == [fingerprint]
    assert not answer_media.with_fingerprints([]).has_attribute("fingerprint")
    assert sd.with_setup("holdconn").media[0].setup is SetupRole.ACTPASS  # media level wins
    assert sd.with_setup("holdconn").setup is SetupRole.HOLDCONN


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.with_setup("sideways"), "'sideways' is not an a=setup role"),
        (lambda m: m.with_setup(""), "'' is not an a=setup role"),
        (lambda m: m.with_tls_id("a" * 19), "invalid a=tls-id: tls-id has 19 characters"),
        (lambda m: m.with_tls_id("a" * 256), "invalid a=tls-id: tls-id has 256 characters"),
        (lambda m: m.with_tls_id("a" * 19 + "="), "invalid a=tls-id: tls-id character '='"),
        (lambda m: m.with_tls_id(12345678901234567890), "tls-id 12345678901234567890 is not text"),
    ],
)
def test_dtls_builders_refuse_bad_input(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LocalProtocolError) as caught:
        call(MediaDescription.build(port=4000, proto="UDP/TLS/RTP/SAVP"))
    assert str(caught.value).startswith(message)


def test_with_setup_writes_the_lower_case_value() -> None:
    media = MediaDescription.build(port=4000).with_setup("PASSIVE")
    assert media.attributes == (("setup", "passive"),)
    assert type(media.attributes[0][1]) is str


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------

_ACCEPTABLE = ["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"]


@st.composite
def fingerprints(draw: st.DrawFn) -> FingerprintAttribute:
    name = draw(st.sampled_from([*_ACCEPTABLE, "x-hash", "sha3-256"]))
    length = HASH_LENGTHS.get(name) or draw(st.integers(1, 80))
    spelled = draw(st.sampled_from([name, name.upper(), name.title()]))
    return FingerprintAttribute(spelled, draw(st.binary(min_size=length, max_size=length)))


@settings(max_examples=300, deadline=None)
@given(fingerprints())
def test_built_fingerprint_round_trips(fingerprint: FingerprintAttribute) -> None:
    value = fingerprint.to_value()
    assert value == value.split(" ")[0] + " " + value.split(" ")[1].upper()
    parsed = FingerprintAttribute.parse(value)
    assert parsed == fingerprint
    assert parsed.to_value() == value
    assert hash(parsed) == hash(fingerprint)
    # And through a whole description, byte for byte.
    media = MediaDescription.build(port=4000, proto="UDP/TLS/RTP/SAVPF")
    sd = SessionDescription.build("a", "192.0.2.1", [media.with_fingerprints([fingerprint])])
    again = parse_sdp(sd.to_bytes())
    assert again.to_bytes() == sd.to_bytes()
    assert again.media[0].fingerprints == [fingerprint]


_FINGERPRINTISH = st.lists(
    st.sampled_from(["sha-256", "SHA-1", "md5", " ", ":", "AB", "0", "f", "G", "\t", FP1]),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=120), _FINGERPRINTISH))
def test_any_fingerprint_value_parses_or_raises_sdp_parse_error(value: str) -> None:
    try:
        parsed = FingerprintAttribute.parse(value)
    except SdpParseError as exc:
        assert exc.reason and exc.offset is not None and 0 <= exc.offset <= len(value)
        return
    assert parsed.to_value() == value
    assert FingerprintAttribute.parse(dataclasses.replace(parsed).to_value()) == parsed
    assert isinstance(parsed.is_acceptable_hash, bool) and repr(parsed)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_tls_id_parses_or_raises_sdp_parse_error(value: str) -> None:
    try:
        assert parse_tls_id(value) == value
    except SdpParseError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(value)
        return
    assert 20 <= len(value) <= 255 and set(value) <= set(TLS_ID_ALPHABET)


# Builders refuse CR, LF and NUL; lone surrogates cannot be written as UTF-8 at all.
_ATTRIBUTE_TEXT = st.characters(blacklist_characters="\r\n\0", blacklist_categories=["Cs"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fingerprint", "setup", "tls-id", "crypto", "x"]),
            st.none() | st.text(alphabet=_ATTRIBUTE_TEXT, max_size=40),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_dtls_properties_parse_or_raise_sdp_parse_error(
    attributes: list[tuple[str, str | None]], at_session: bool
) -> None:
    media = MediaDescription.build(port=4000, proto="UDP/TLS/RTP/SAVP")
    if at_session:
        sd = SessionDescription.build("a", "192.0.2.1", [media], attributes=attributes)
    else:
        sd = SessionDescription.build("a", "192.0.2.1", [media.with_attributes(attributes)])
    parsed = parse_sdp(sd.to_bytes())
    assert parsed.to_bytes() == sd.to_bytes()
    for holder in (parsed.media[0], sd.media[0]):
        for name in ("fingerprints", "setup", "tls_id", "crypto"):
            try:
                getattr(holder, name)
            except SdpParseError as exc:
                assert exc.reason
        assert holder.is_dtls_srtp
