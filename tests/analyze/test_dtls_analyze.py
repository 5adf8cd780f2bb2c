"""`confsec analyze` on DTLS-SRTP captures: real handshakes, SRTP under the keys they exported.

Each capture is built packet by packet (`tests.analyze.synthetic`): SIP over UDP with the offer
and answer (UDP/TLS/RTP/SAVP, a=setup, a=fingerprint of each side's certificate), a real DTLS
handshake run by pyOpenSSL between the two media addresses (`tests.codec.dtls_pair`), then SRTP
both ways under the keys both connections export (`export_keying_material`, the values RFC 5764
§4.2 names), so the analyser's derivation from the key log is checked against OpenSSL's. The key
log is what the handshake's keylog callback wrote (an endpoint's SSLKEYLOGFILE).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from confsec.analyze.dtls import KeyLog, parse_keylog
from confsec.analyze.tlskeys import parse_tshark_sdp
from tests.analyze.synthetic import (
    Capture,
    Result,
    rtcp_sr,
    rtp,
    run_analyze,
    sdp,
    sip_invite,
    sip_ok,
    srtp_session,
)
from tests.cli_runner import confsec

pytest.importorskip("OpenSSL")
from tests.codec.dtls_pair import C2S, Handshake, handshake, self_signed

CLIENT = ("192.0.2.10", 50000)
SERVER = ("198.51.100.20", 40000)
SSRC_C, SSRC_S = 0x0C11E000, 0x5E7E0000
HANDSHAKE = "DTLS-SRTP handshakes"
MEDIA = "No plain RTP or RTCP on media ports"
REUSE = "No key stream is reused"
CERTS = "DTLS certificates match"
PROTO = "UDP/TLS/RTP/SAVP"
USE_SRTP_80 = b"\x00\x0e\x00\x05\x00\x02\x00\x01\x00"  # use_srtp: AES128_CM_HMAC_SHA1_80

Address = tuple[str, int]


@dataclass
class Keys:
    """What both ends exported (client key, client salt, server key, server salt)."""

    client_key: bytes
    client_salt: bytes
    server_key: bytes
    server_salt: bytes

    def secrets(self, hs: Handshake) -> list[bytes]:
        """The four SRTP values and the master secret they came from."""
        master = hs.client.master_key()
        return [self.client_key, self.client_salt, self.server_key, self.server_salt, master]


def exported(hs: Handshake) -> Keys:
    out = hs.client.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
    assert out == hs.server.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
    return Keys(out[:16], out[32:46], out[16:32], out[46:60])


def colons(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


@dataclass
class Call:
    """A capture being built, and the frames a test names."""

    hs: Handshake
    cap: Capture = field(default_factory=Capture)
    frames: dict[str, int] = field(default_factory=dict)

    @property
    def keylog(self) -> KeyLog:
        return parse_keylog("\n".join(self.hs.keylog))

    def signalling(
        self,
        client: Address = CLIENT,
        server: Address = SERVER,
        server_cert: bytes | None = None,
    ) -> None:
        """Offer and answer over UDP SIP, each with the fingerprint of its side's certificate."""
        offer = sdp(
            *client, PROTO, "setup:actpass", f"fingerprint:sha-256 {colons(self.hs.client_cert)}"
        )
        cert = server_cert if server_cert is not None else self.hs.server_cert
        answer = sdp(*server, PROTO, "setup:passive", f"fingerprint:sha-256 {colons(cert)}")
        self.cap.udp(client[0], 5060, server[0], 5060, sip_invite(offer))
        self.cap.udp(server[0], 5060, client[0], 5060, sip_ok(answer))

    def dtls(
        self,
        datagrams: list[tuple[str, bytes]] | None = None,
        client: Address = CLIENT,
        server: Address = SERVER,
    ) -> None:
        """The handshake's datagrams (all, or those given) between the two media addresses."""
        for i, (way, data) in enumerate(self.hs.datagrams if datagrams is None else datagrams):
            src, dst = (client, server) if way == C2S else (server, client)
            frame = self.cap.udp(*src, *dst, data)
            if i == 1:
                self.frames["server hello"] = frame

    def media(
        self,
        n: int = 20,
        client: Address = CLIENT,
        server: Address = SERVER,
        first_seq: int = 1,
        payload: bytes | None = None,
    ) -> None:
        """SRTP both ways (and one SRTCP report each way), under the exported keys."""
        k = exported(self.hs)
        to_server = srtp_session(k.client_key, k.client_salt)
        to_client = srtp_session(k.server_key, k.server_salt)
        for seq in range(first_seq, first_seq + n):
            self.cap.udp(*client, *server, to_server.protect(rtp(seq, SSRC_C, payload)))
            self.cap.udp(*server, *client, to_client.protect(rtp(seq, SSRC_S, payload)))
        self.cap.udp(*client, *server, to_server.protect_rtcp(rtcp_sr(SSRC_C, n)))
        self.cap.udp(*server, *client, to_client.protect_rtcp(rtcp_sr(SSRC_S, n)))

    def analyze(self, tmp_path: Path, keylog: bool = True) -> Result:
        capture = self.cap.write(tmp_path / "dtls.pcap")
        return run_analyze(tmp_path, capture, keylog=self.keylog if keylog else None)


@pytest.fixture(scope="module")
def hs() -> Handshake:
    return handshake()


def clean_call(hs: Handshake) -> Call:
    call = Call(hs)
    call.signalling()
    call.dtls()
    call.media()
    return call


def assert_no_secret(texts: list[str], hs: Handshake) -> None:
    """No key, salt or master secret, in hex (either case) or base64, in any text."""
    k = exported(hs)
    needles = []
    for secret in k.secrets(hs):
        needles += [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()[:16]]
    needles.append(base64.b64encode(k.client_key + k.client_salt).decode()[:20])
    for text in texts:
        for needle in needles:
            assert needle not in text, f"a secret is in the output: {needle[:6]}..."


# -- the cases --------------------------------------------------------------------------------


def test_a_clean_capture_with_the_key_log_passes(tmp_path: Path, hs: Handshake) -> None:
    res = clean_call(hs).analyze(tmp_path)
    assert res.findings["findings"] == [], res.findings
    assert res.findings["unjudged"] == [], res.findings
    for req in ("R2", "R3", "R4"):
        assert res.requirement(req) == "pass", (req, res.verdicts)
    media = res.scenario(MEDIA)["observed"]["counts"]
    assert media["streams judged"] == 4 and media["packets judged"] == 42, media  # RTP + SRTCP
    reuse = res.scenario(REUSE)["observed"]["counts"]
    assert reuse["keyed streams"] == 2 and reuse["shared key streams"] == 0, reuse
    shake = res.scenario(HANDSHAKE)
    assert shake["verdict"] == "pass"
    assert shake["observed"]["counts"]["associations keyed from the key log"] == 1
    certs = res.scenario(CERTS)
    assert certs["observed"]["counts"]["certificates matching"] == 2, certs
    text = json.dumps(res.verdicts) + json.dumps(res.findings)
    assert_no_secret([text], hs)


def test_plain_rtp_injected_into_a_dtls_srtp_stream_fails_naming_its_frame(
    tmp_path: Path, hs: Handshake
) -> None:
    call = clean_call(hs)
    injected = call.cap.udp(*CLIENT, *SERVER, rtp(21, SSRC_C))  # same SSRC, no SRTP
    call.media(5, first_seq=22)
    res = call.analyze(tmp_path)
    assert res.kinds() == {"unauthenticated-rtp-in-srtp-stream"}, res.findings
    (f,) = res.findings["findings"]
    assert f["example_frames"] == [injected] and f["packets"] == 1, f
    assert f["requirement"] == "R3"
    assert res.requirement("R3") == "fail"
    assert res.scenario(HANDSHAKE)["verdict"] == "pass"
    assert res.requirement("R4") == "pass"


def test_without_the_key_log_media_is_inconclusive_and_the_handshake_still_judged(
    tmp_path: Path, hs: Handshake
) -> None:
    res = clean_call(hs).analyze(tmp_path, keylog=False)
    media = res.scenario(MEDIA)
    assert media["verdict"] == "inconclusive", media
    assert "--keylog" in media["reason"] and "CLIENT_RANDOM" in media["reason"], media
    assert res.scenario(REUSE)["verdict"] == "inconclusive"
    assert "--keylog" in res.scenario(REUSE)["reason"]
    shake = res.scenario(HANDSHAKE)
    assert shake["verdict"] == "pass", shake
    assert shake["observed"]["counts"]["associations keyed from the key log"] == 0
    assert res.scenario(CERTS)["verdict"] == "pass"
    assert res.findings["findings"] == []
    assert res.requirement("R3") == "inconclusive"


def test_two_associations_that_exported_the_same_keys_break_r4(
    tmp_path: Path, hs: Handshake
) -> None:
    """The same handshake replayed on a second pair of addresses: the key log gives both the
    same master secret, so both derive the same keys, and the media of both shares them."""
    client2, server2 = ("192.0.2.11", 50002), ("198.51.100.21", 40002)
    call = clean_call(hs)
    call.signalling(client2, server2)
    call.dtls(client=client2, server=server2)
    call.media(client=client2, server=server2, payload=b"\x55" * 160)  # other packets
    res = call.analyze(tmp_path)
    assert "dtls-srtp-keys-shared" in res.kinds(), res.findings
    shared = next(f for f in res.findings["findings"] if f["kind"] == "dtls-srtp-keys-shared")
    assert shared["requirement"] == "R4" and len(shared["example_frames"]) == 2
    assert "keystream-reuse" in res.kinds()  # the ledger sees the same (key, salt, SSRC) too
    assert res.requirement("R4") == "fail"
    assert res.scenario(MEDIA)["verdict"] == "pass"  # every packet still authenticates
    assert_no_secret([json.dumps(res.findings)], hs)


def test_a_certificate_that_is_not_the_signalled_one_breaks_r2(
    tmp_path: Path, hs: Handshake
) -> None:
    stranger = self_signed("someone-else")[0]
    call = Call(hs)
    call.signalling(server_cert=stranger)
    call.dtls()
    call.media()
    res = call.analyze(tmp_path)
    assert res.kinds() == {"certificate-mismatch"}, res.findings
    (f,) = res.findings["findings"]
    assert f["requirement"] == "R2"
    assert f["example_frames"] == [call.frames["server hello"]]  # its Certificate came there
    assert colons(stranger) in f["sentence"] and colons(hs.server_cert) in f["sentence"]
    assert res.requirement("R2") == "fail"
    assert res.requirement("R3") == "pass" and res.requirement("R4") == "pass"


def test_a_null_srtp_profile_breaks_r3(tmp_path: Path, hs: Handshake) -> None:
    """OpenSSL offers no NULL profile, so the ServerHello's choice is rewritten (Finished is
    encrypted: the capture still reads as a completed handshake)."""
    null = USE_SRTP_80[:-3] + b"\x00\x05\x00"
    rewritten = [(w, d if w == C2S else d.replace(USE_SRTP_80, null)) for w, d in hs.datagrams]
    call = Call(hs)
    call.signalling()
    call.dtls(rewritten)
    res = call.analyze(tmp_path)
    (f,) = [f for f in res.findings["findings"] if f["kind"] == "null-srtp-profile"]
    assert "SRTP_NULL_HMAC_SHA1_80" in f["sentence"] and f["requirement"] == "R3"
    assert f["example_frames"] == [call.frames["server hello"]]
    assert res.scenario(HANDSHAKE)["verdict"] == "fail"
    assert res.requirement("R3") == "fail"


def test_media_before_the_handshake_completed_breaks_r3(tmp_path: Path, hs: Handshake) -> None:
    """The server sends SRTP once it has sent its ServerHello flight, before the client's
    Finished: the keys exist (and authenticate it), but the handshake had not completed."""
    call = Call(hs)
    call.signalling()
    call.dtls(hs.datagrams[:2])
    k = exported(hs)
    early = srtp_session(k.server_key, k.server_salt)
    first = call.cap.udp(*SERVER, *CLIENT, early.protect(rtp(1, SSRC_S)))
    call.cap.udp(*SERVER, *CLIENT, early.protect(rtp(2, SSRC_S)))
    call.dtls(hs.datagrams[2:])
    call.media(first_seq=3)
    res = call.analyze(tmp_path)
    assert res.kinds() == {"media-before-handshake"}, res.findings
    (f,) = res.findings["findings"]
    assert f["example_frames"] == [first, first + 1] and f["packets"] == 2
    assert "before the handshake completed" in f["sentence"]
    assert res.requirement("R3") == "fail"
    assert res.scenario(MEDIA)["verdict"] == "pass"  # each packet authenticates


def test_media_where_the_handshake_never_completed_breaks_r3(tmp_path: Path, hs: Handshake) -> None:
    call = Call(hs)
    call.signalling()
    call.dtls(hs.datagrams[:-1])  # the server's ChangeCipherSpec and Finished never came
    call.media(5)
    res = call.analyze(tmp_path)
    assert "media-without-handshake" in res.kinds(), res.findings
    f = next(f for f in res.findings["findings"] if f["kind"] == "media-without-handshake")
    assert f["packets"] == 6 and "before the handshake completed" in f["sentence"]
    shake = res.scenario(HANDSHAKE)
    assert shake["verdict"] == "fail"
    assert res.requirement("R3") == "fail"


def test_the_command_line_reads_dtls_secrets_from_the_keylog_option(
    tmp_path: Path, hs: Handshake
) -> None:
    """`confsec analyze CAPTURE --keylog FILE`, as a user runs it; no TLS in the capture, so
    tshark is not needed."""
    capture = clean_call(hs).cap.write(tmp_path / "call.pcap")
    keylog = tmp_path / "sslkeylog.txt"
    keylog.write_text("\n".join(hs.keylog) + "\n")
    reports = tmp_path / "reports"
    result = confsec("analyze", str(capture), "--keylog", str(keylog), "--reports", str(reports))
    assert result.code == 0, result.output
    assert "1 DTLS associations (1 keyed from the key log)" in result.output, result.output
    texts = [result.output] + [p.read_text() for p in reports.iterdir()]
    assert_no_secret(texts, hs)


def test_fingerprints_in_sdp_that_tshark_decrypted() -> None:
    """tshark prints a frame's media-level and session-level attributes in two columns; each
    m= line of the frame gets the media-level fingerprints, else the session-level ones."""
    line = "\t".join(
        [
            "192.0.2.10",
            "",
            "192.0.2.10",
            "50000,50002",
            f"{PROTO},{PROTO}",
            "setup:actpass,fingerprint:sha-256 AB:CD,rtcp-mux",
            "fingerprint:sha-1 01:02",
        ]
    )
    sig = parse_tshark_sdp(line + "\n" + "\t".join(["192.0.2.11", "", "", "4000", PROTO, "", ""]))
    assert sig.fingerprints == [
        ("192.0.2.10", 50000, (("sha-256", b"\xab\xcd"),)),
        ("192.0.2.10", 50002, (("sha-256", b"\xab\xcd"),)),
    ]
    assert sig.media[-1] == ("192.0.2.11", 4000, PROTO)
    only_session = "\t".join(["192.0.2.10", "", "", "50000", PROTO, "", "fingerprint:sha-1 01:02"])
    assert parse_tshark_sdp(only_session).fingerprints == [
        ("192.0.2.10", 50000, (("sha-1", b"\x01\x02"),))
    ]


def test_a_key_log_without_the_handshake_s_random_says_so(tmp_path: Path, hs: Handshake) -> None:
    """The key log of another call: the media cannot be judged, and the reason names the
    missing CLIENT_RANDOM (its first bytes: the random is public, the secret is not)."""
    call = clean_call(hs)
    capture = call.cap.write(tmp_path / "dtls.pcap")
    other = parse_keylog("\n".join(handshake().keylog))
    res = run_analyze(tmp_path, capture, keylog=other)
    media = res.scenario(MEDIA)
    assert media["verdict"] == "inconclusive", media
    assert f"no CLIENT_RANDOM {hs.client.client_random().hex()[:16]}" in media["reason"], media
    assert res.scenario(HANDSHAKE)["verdict"] == "pass"


def test_a_capture_without_tls_needs_no_tshark_for_the_key_log(
    tmp_path: Path, hs: Handshake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key log may serve DTLS-SRTP alone: tshark is asked for only when TLS is there."""
    import confsec.analyze.tlskeys as tlskeys

    capture = clean_call(hs).cap.write(tmp_path / "dtls.pcap")
    keylog = tmp_path / "keylog.txt"
    keylog.write_text("\n".join(hs.keylog))
    monkeypatch.setattr(tlskeys.shutil, "which", lambda _name: None)
    sig = tlskeys.signalling_from_tls(capture, keylog)
    assert (sig.keys, sig.media, sig.fingerprints, sig.sdp_frames) == ([], [], [], 0)
