"""The DTLS codec on OpenSSL's bytes, and on hostile ones.

A real DTLS-SRTP handshake (pyOpenSSL, memory BIOs) is the sample: its records, handshake
messages, hellos and certificates must read as OpenSSL says they are (randoms, SRTP profile,
extended master secret, the DER it was given). Hand-built records then probe each defect: every
truncated prefix, each wrong length, fragments out of order, overlapping and disagreeing; any
of them must end in a `DtlsParseError` (or a counted drop), never another exception.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confsec.codec import dtls
from confsec.codec.dtls import (
    DtlsParseError,
    HandshakeMessage,
    HandshakeReassembler,
    parse_certificate,
    parse_client_hello,
    parse_handshake,
    parse_records,
    parse_server_hello,
    parse_use_srtp,
)
from confsec.errors import RemoteProtocolError

pytest.importorskip("OpenSSL")
from tests.codec.dtls_pair import C2S, S2C, Handshake, handshake

# -- hand-built wire --------------------------------------------------------------------------


def record(ctype: int, body: bytes, epoch: int = 0, seq: int = 0, version: int = 0xFEFD) -> bytes:
    head = bytes([ctype]) + version.to_bytes(2, "big") + epoch.to_bytes(2, "big")
    return head + seq.to_bytes(6, "big") + len(body).to_bytes(2, "big") + body


def hs(msg_type: int, seq: int, body: bytes, offset: int = 0, length: int | None = None) -> bytes:
    total = len(body) if length is None else length
    return (
        bytes([msg_type])
        + total.to_bytes(3, "big")
        + seq.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + len(body).to_bytes(3, "big")
        + body
    )


def frag(msg_type: int, seq: int, whole: bytes, start: int, end: int) -> HandshakeMessage:
    return HandshakeMessage(msg_type, len(whole), seq, start, end - start, whole[start:end])


# -- the real handshake -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Handshake:
    return handshake()


def messages(hs_: Handshake, way: str) -> dict[int, bytes]:
    """msg_type -> body of every plaintext handshake message one direction sent."""
    r = HandshakeReassembler()
    out = {}
    for direction, datagram in hs_.datagrams:
        if direction != way:
            continue
        for rec in parse_records(datagram):
            assert rec.version in (0xFEFF, 0xFEFD)  # a ClientHello record may say 1.0
            if rec.content_type == dtls.HANDSHAKE and rec.epoch == 0:
                for f in parse_handshake(rec.fragment):
                    m = r.add(f)
                    if m is not None:
                        out[m.msg_type] = m.body
    return out


def test_records_of_a_real_handshake(real: Handshake) -> None:
    kinds = []
    for _, datagram in real.datagrams:
        recs = parse_records(datagram)
        assert sum(13 + len(r.fragment) for r in recs) == len(datagram)
        kinds += [(r.content_type, r.epoch) for r in recs]
    assert kinds.count((dtls.CHANGE_CIPHER_SPEC, 0)) == 2  # one each way
    assert (dtls.HANDSHAKE, 1) in kinds  # the encrypted Finished


def test_hellos_and_certificates_of_a_real_handshake(real: Handshake) -> None:
    client, server = messages(real, C2S), messages(real, S2C)
    ch = parse_client_hello(client[dtls.CLIENT_HELLO])
    assert ch.random == real.client.client_random()
    assert ch.use_srtp is not None and ch.use_srtp.profiles == (0x0001,)
    assert ch.use_srtp.mki == b""
    assert ch.extended_master_secret
    sh = parse_server_hello(server[dtls.SERVER_HELLO])
    assert sh.random == real.server.server_random()
    assert sh.use_srtp is not None and sh.use_srtp.profiles == (0x0001,)
    assert sh.extended_master_secret
    assert sh.cipher_suite in ch.cipher_suites
    assert parse_certificate(server[dtls.CERTIFICATE]) == [real.server_cert]
    assert parse_certificate(client[dtls.CERTIFICATE]) == [real.client_cert]


def test_without_extended_master_secret() -> None:
    plain = handshake(ems=False)
    ch = parse_client_hello(messages(plain, C2S)[dtls.CLIENT_HELLO])
    sh = parse_server_hello(messages(plain, S2C)[dtls.SERVER_HELLO])
    assert not ch.extended_master_secret and not sh.extended_master_secret


def test_profiles_are_named() -> None:
    assert dtls.profile_name(0x0001) == "SRTP_AES128_CM_HMAC_SHA1_80"
    assert dtls.profile_name(0x0008) == "SRTP_AEAD_AES_256_GCM"
    assert dtls.profile_name(0x0042) == "SRTP profile 0x0042"
    assert [p for p in dtls.SRTP_PROFILES if dtls.is_null_profile(p)] == [0x0005, 0x0006]
    assert dtls.is_dtls(b"\x16") and dtls.is_dtls(b"\x3f") and not dtls.is_dtls(b"\x80")
    assert not dtls.is_dtls(b"") and not dtls.is_dtls(b"\x00\x01")  # STUN


# -- hostile input ----------------------------------------------------------------------------


def test_every_truncated_prefix_is_refused_cleanly(real: Handshake) -> None:
    """A prefix that ends on a record boundary parses; any other raises DtlsParseError."""
    for _, datagram in real.datagrams:
        bounds = {r.offset for r in parse_records(datagram)}
        for cut in range(1, len(datagram)):
            if cut in bounds:
                parse_records(datagram[:cut])
            else:
                with pytest.raises(DtlsParseError):
                    parse_records(datagram[:cut])


def test_every_truncated_message_body_is_refused_cleanly(real: Handshake) -> None:
    client, server = messages(real, C2S), messages(real, S2C)
    cases = [
        (parse_client_hello, client[dtls.CLIENT_HELLO]),
        (parse_server_hello, server[dtls.SERVER_HELLO]),
        (parse_certificate, server[dtls.CERTIFICATE]),
    ]
    for parse, body in cases:
        whole = 0
        for cut in range(len(body)):
            try:
                parse(body[:cut])
            except DtlsParseError:
                continue
            whole += 1  # a hello cut exactly before its extensions is well-formed without them
        assert whole == (parse is not parse_certificate), parse


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "empty"),
        (record(22, b"abc")[:-1], "record fragment"),
        (record(22, b"abc") + b"\x16\xfe", "record header"),
        (record(22, b"")[:11] + b"\x00\x10abc", "record fragment: needs 16 bytes, 3 left"),
        (record(22, bytes(18433)), "record length 18433 > 18432"),
        (record(22, b"x", version=0x0303), "not DTLS"),
        (record(25, b"x"), "content type 25"),
        (b"\x2f" + bytes(20), "content type 47"),  # a DTLS 1.3 unified header
    ],
)
def test_record_layer_defects(datagram: bytes, reason: str) -> None:
    with pytest.raises(DtlsParseError, match=reason) as err:
        parse_records(datagram)
    assert isinstance(err.value, RemoteProtocolError)


@pytest.mark.parametrize(
    ("fragment", "reason"),
    [
        (hs(1, 0, b"abc")[:-1], "handshake fragment"),
        (hs(1, 0, b"abc")[:7], "handshake header"),
        (hs(1, 0, b"abc", offset=2, length=4), "runs past"),
        (hs(11, 0, b"a", length=2**20), "handshake length"),
    ],
)
def test_handshake_header_defects(fragment: bytes, reason: str) -> None:
    with pytest.raises(DtlsParseError, match=reason):
        parse_handshake(fragment)


def _hello(extensions: bytes) -> bytes:
    body = b"\xfe\xfd" + bytes(32) + b"\x00" + b"\x00" + b"\x00\x02\xc0\x2b" + b"\x01\x00"
    return body + len(extensions).to_bytes(2, "big") + extensions


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_hello(b"\x00\x17\x00\x00" * 2), "appears twice"),
        (_hello(b"\x00\x0e\x00\x09"), "extension 14"),
        (_hello(b"") + b"x", "trailing"),
        (b"\xfe\xfd" + bytes(32) + b"\x21" + bytes(33), "session_id"),
        (b"\xfe\xfd" + bytes(32) + b"\x00\x00\x00\x03abc\x01\x00", "cipher_suites"),
        (b"\xfe\xfd" + bytes(32) + b"\x00\x00\x00\x02\xc0\x2b\x00", "compression"),
    ],
)
def test_client_hello_defects(body: bytes, reason: str) -> None:
    with pytest.raises(DtlsParseError, match=reason):
        parse_client_hello(body)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x03\x00\x01\x00\x00", "odd"),
        (b"\x00\x00\x00", "SRTPProtectionProfiles"),
        (b"\x00\x02\x00\x01\x02a", "srtp_mki"),
        (b"\x00\x02\x00\x01\x00\x00", "trailing"),
    ],
)
def test_use_srtp_defects(data: bytes, reason: str) -> None:
    with pytest.raises(DtlsParseError, match=reason):
        parse_use_srtp(data)


def test_use_srtp_with_an_mki() -> None:
    got = parse_use_srtp(b"\x00\x04\x00\x07\x00\x01\x02\xab\xcd")
    assert got.profiles == (0x0007, 0x0001) and got.mki == b"\xab\xcd"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x00\x00\x09\x00\x00\x02ab", "certificate_list"),
        (b"\x00\x00\x05\x00\x00\x05ab", "certificate: needs 5"),
        (b"\x00\x00\x03\x00\x00\x00", "certificate: length 0"),
        (b"\x00\x00\x00\x00", "trailing"),
        (b"\x00\x00\x44" + b"\x00\x00\x01x" * 17, "more than 16"),
    ],
)
def test_certificate_defects(body: bytes, reason: str) -> None:
    with pytest.raises(DtlsParseError, match=reason):
        parse_certificate(body)


def test_alerts() -> None:
    (alert,) = dtls.parse_alerts(b"\x02\x2a")
    assert (alert.level, alert.name) == (2, "bad_certificate")
    for bad in (b"", b"\x02", b"\x02\x28\x01"):
        with pytest.raises(DtlsParseError):
            dtls.parse_alerts(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    for parse in (
        parse_records,
        parse_handshake,
        parse_client_hello,
        parse_server_hello,
        parse_certificate,
        parse_use_srtp,
    ):
        try:
            parse(data)
        except DtlsParseError:
            pass
    try:  # the same bytes behind a valid record header reach the handshake layer
        for rec in parse_records(record(22, data)):
            parse_handshake(rec.fragment)
    except DtlsParseError:
        pass


# -- reassembly -------------------------------------------------------------------------------


WHOLE = bytes(range(256)) * 3


def test_fragments_out_of_order_are_reassembled() -> None:
    r = HandshakeReassembler()
    cuts = [(0, 100), (100, 350), (350, 600), (600, 768)]
    random.Random(7).shuffle(cuts)
    got = [r.add(frag(11, 2, WHOLE, a, b)) for a, b in cuts]
    assert got[:-1] == [None, None, None]
    assert got[-1] is not None and got[-1].body == WHOLE and got[-1].complete
    assert r.pending == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 767), st.integers(1, 300)), max_size=40), st.randoms())
def test_any_cover_in_any_order_gives_the_message(cuts: list, rnd: random.Random) -> None:
    """Overlapping fragments of random sizes, plus a cover of the whole, in random order."""
    pieces = [(a, min(a + n, len(WHOLE))) for a, n in cuts]
    pieces += [(a, min(a + 97, len(WHOLE))) for a in range(0, len(WHOLE), 97)]
    rnd.shuffle(pieces)
    r = HandshakeReassembler()
    done = [m for m in (r.add(frag(11, 5, WHOLE, a, b)) for a, b in pieces) if m is not None]
    assert [m.body for m in done] == [WHOLE] and r.pending == 0


def test_overlaps_and_retransmissions() -> None:
    r = HandshakeReassembler()
    assert r.add(frag(11, 2, WHOLE, 0, 400)) is None
    assert r.add(frag(11, 2, WHOLE, 300, 500)) is None  # overlaps, same bytes
    done = r.add(frag(11, 2, WHOLE, 450, 768))
    assert done is not None and done.body == WHOLE
    assert r.add(frag(11, 2, WHOLE, 0, 768)) is None  # the whole message again
    assert r.repeated == 1


def test_fragments_that_disagree_are_refused() -> None:
    r = HandshakeReassembler()
    r.add(frag(11, 2, WHOLE, 0, 400))
    other = bytearray(WHOLE)
    other[350] ^= 0xFF
    with pytest.raises(DtlsParseError, match="overlapping fragments differ"):
        r.add(frag(11, 2, bytes(other), 300, 500))
    with pytest.raises(DtlsParseError, match="disagree"):
        r.add(frag(12, 2, WHOLE, 400, 500))
    with pytest.raises(DtlsParseError, match="disagree"):
        r.add(frag(11, 2, WHOLE + b"x", 400, 500))
    r.add(frag(1, 0, b"hello", 0, 5))
    with pytest.raises(DtlsParseError, match="reused"):
        r.add(frag(2, 0, b"hello", 0, 5))


def test_too_many_pending_messages_are_dropped_and_counted() -> None:
    r = HandshakeReassembler(max_pending=3)
    for seq in range(10):
        assert r.add(frag(11, seq, WHOLE, 0, 10)) is None
    assert (r.pending, r.dropped) == (3, 7)


def test_a_message_in_too_many_pieces_is_refused() -> None:
    r = HandshakeReassembler()
    big = bytes(2 * (dtls.MAX_PIECES + 1))
    with pytest.raises(DtlsParseError, match="pieces"):
        for i in range(dtls.MAX_PIECES + 1):
            r.add(frag(11, 0, big, 2 * i, 2 * i + 1))  # every other byte: no piece joins


def test_a_fragment_outside_its_message_is_refused() -> None:
    r = HandshakeReassembler()
    with pytest.raises(DtlsParseError):
        r.add(HandshakeMessage(11, 10, 0, 8, 5, b"12345"))
    with pytest.raises(DtlsParseError):
        r.add(HandshakeMessage(11, 2**17, 0, 0, 1, b"1"))


def test_real_fragmented_certificates_reassemble() -> None:
    """OpenSSL with a 300-byte MTU splits each Certificate over records in separate
    datagrams; shuffled, they still come together."""
    small = handshake(mtu=300)
    frags = []
    for way, datagram in small.datagrams:
        for rec in parse_records(datagram):
            if way == S2C and rec.content_type == dtls.HANDSHAKE and rec.epoch == 0:
                frags += [f for f in parse_handshake(rec.fragment) if f.msg_type == 11]
    assert len(frags) >= 2 and not any(f.complete for f in frags)
    random.Random(3).shuffle(frags)
    r = HandshakeReassembler()
    done = [m for m in (r.add(f) for f in frags) if m is not None]
    assert [parse_certificate(m.body) for m in done] == [[small.server_cert]]
