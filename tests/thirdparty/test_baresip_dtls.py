"""A baresip participant keyed by DTLS-SRTP (RFC 5763/5764) in a reference conference.

The reference runs in its dtls-srtp mode with baresip's interop flags (test_baresip.py says why
baresip needs them); a confsec participant (alice) creates the conference, baresip (bob, its
`dtls_srtp` module) dials in, and a loopback capture lets tshark read the handshake on its own.
One call serves every test here (a module fixture), so the suite pays for baresip once.

What confsec concludes about baresip 1.0 (Debian 12, libre 1.1) in DTLS-SRTP mode, pinned here:

1. It joins. It offers `UDP/TLS/RTP/SAVPF` with a session-level `a=setup:actpass` and SHA-256
   `a=fingerprint`, no `a=tls-id` (RFC 8842 postdates it) and no `a=rtcp-mux`; the focus answers
   `a=setup:active`, the mixer sends the ClientHello, and baresip completes DTLS 1.2 as the server
   with SRTP_AES128_CM_HMAC_SHA1_80, checking the mixer's certificate against the answer. Media
   flows both ways and every packet authenticates: baresip -> mixer -> alice (alice hears
   baresip's 440 Hz tone) and back (baresip decodes, and logs no decryption failure).
2. tshark agrees: the certificate each side sent hashes to the a=fingerprint its SDP signalled,
   and baresip sent no RTP before its handshake completed.
3. baresip sends RTCP in the clear (R3). Without rtcp-mux its RTCP goes to the answer's port + 1,
   where RFC 5764 section 4.1 wants a second DTLS association; nobody starts one (the mixer keys
   only the RTP port and has no RTCP socket), and baresip sends plain RTCP anyway: an APP packet
   ("PING") as the call starts, SRs every few seconds, and at the hang-up a BYE, each with the
   SDES CNAME `sips:bob@...` readable on the wire. The mixer's port + 1 is closed (ICMP port
   unreachable). `confsec analyze` fails R3 on that flow (and passes R2: every certificate
   matches its a=fingerprint).
4. baresip cannot be rekeyed (R6). It answers the focus's re-offer (new fingerprint, new tls-id)
   with `a=setup:actpass` in the answer (RFC 5763 section 5: an answer is active or passive), the
   certificate of its first offer and no tls-id, and runs no new handshake. The reference keeps
   the old association for that leg, so media goes on under the first keys: bob's keys never
   change while the other members (alice) get a new epoch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec
from confsec.media.endpoint import MediaStats
from confsec.reference.deployment import EmbeddedReference
from confsec.reference.mixer_leg import LegStream, MixerStats
from confsec.reference.rekey import RekeyRound
from confsec.runtime.loop import LoopThread
from tests.analyze.recording import analyze, recording
from tests.thirdparty.baresip import INTEROP, Baresip, conference_id, need_baresip, wait_until
from tests.thirdparty.tshark_view import (
    DTLS_1_2,
    SRTP_AES128_CM_HMAC_SHA1_80,
    SdpSeen,
    dtls_handshakes,
    fields,
    need_tshark,
    sdp_over_tls,
    udp_payload_frames,
)

BARESIP_TONE_HZ = 440.0
CAPTURE_SETTLE_S = 1.0
"""Left to dumpcap after the call, before it stops: it reads the kernel's buffer in blocks
(250 ms read timeout), and under load the last block, with the hang-up's RTCP BYE, was lost."""
SUITE = "AES_CM_128_HMAC_SHA1_80"


@dataclass(frozen=True)
class MixerLeg:
    """The mixer's side of one participant's audio, at one moment."""

    rx_ok: int
    rx_auth_failed: int
    tx_packets: int
    tls_id: str | None
    """The tls-id of the DTLS association whose keys are in use."""

    @classmethod
    def of(cls, stream: LegStream) -> MixerLeg:
        assert stream.rx is not None and stream.tx is not None
        association = stream.association
        return cls(
            stream.rx.ok,
            stream.rx.auth_failed,
            stream.tx.packets,
            association.setup.tls_id if association else None,
        )


@dataclass(frozen=True)
class LedgerRow:
    """One stream of the mixer's key-stream ledger (the reference's record of its keys)."""

    peer: str
    """`<conference>/<user>/<leg> <epoch label>`."""
    direction: str
    suite: str
    key_fingerprint: str
    packets_seen: int = field(compare=False)


@dataclass
class DtlsCall:
    """What one call showed; the tests judge it."""

    workdir: Path
    created: int = 0
    established: bool = False
    alice: MediaStats | None = None
    alice_tone_ratio: float = 0.0
    """The share of baresip's tone in what alice heard (1.0: only that tone)."""
    mixer: MixerStats | None = None
    bob_before: MixerLeg | None = None
    baresip_rx_bitrate: int = 0
    ledger_before: list[LedgerRow] = field(default_factory=list)
    """The mixer's ledger after the media exchange."""
    rekey_round: RekeyRound | None = None
    """The round carol's join started (it re-offered alice and bob)."""
    bob_after: MixerLeg | None = None
    ledger_after: list[LedgerRow] = field(default_factory=list)
    bob_log: str = ""
    bob_messages: list[str] = field(default_factory=list)
    keylog: Path | None = None
    sip_port: int = 0
    capture: Path | None = None
    no_capture: str = ""
    """Why there is no capture (the tshark tests skip with it)."""


def _ledger(ref: EmbeddedReference) -> list[LedgerRow]:
    return [
        LedgerRow(r.stream.peer, r.stream.direction, r.suite, r.key_fingerprint, r.packets_seen)
        for r in ref.deployment.mixer.ledger.entries()
    ]


def _capture(stack: ExitStack, workdir: Path, sip_port: int, call: DtlsCall) -> None:
    """Record lo (SIP on the reference's port, all UDP, ICMP) when dumpcap can."""
    if shutil.which("dumpcap") is None or shutil.which("tshark") is None:
        call.no_capture = "tshark is not installed; .ci/run installs tshark"
        return
    path = workdir / "lo.pcap"
    try:
        stack.enter_context(recording(path, f"udp or icmp or tcp port {sip_port}"))
    except pytest.fail.Exception as exc:  # no capture privilege: the media tests still run
        call.no_capture = f"dumpcap cannot capture on lo: {exc}"
        return
    stack.callback(time.sleep, CAPTURE_SETTLE_S)  # runs after the call ended, before dumpcap
    call.capture = path


def run_call(workdir: Path) -> DtlsCall:
    """alice creates, baresip joins with DTLS-SRTP, media both ways, then carol's join rekeys."""
    need_baresip("dtls_srtp")
    call = DtlsCall(workdir)
    ref = EmbeddedReference.start(
        workdir / "ref", interop=INTEROP, key_management="dtls-srtp", evidence_dir=workdir
    )
    dep = ref.deployment
    call.keylog = workdir / "reference-tls-keylog.txt"
    call.sip_port = ref.target.port
    with ExitStack() as stack:
        stack.callback(ref.stop)
        _capture(stack, workdir, ref.target.port, call)
        loop = LoopThread("baresip-dtls")
        stack.callback(loop.close)
        conf = ConferenceRun(loop, ref.target, keylog=workdir / "keylog.txt")
        stack.callback(conf.close)
        call.created = conf.create("alice", OfferSpec()).status
        assert conf.conference_uri is not None
        conf_id = conference_id(conf.conference_uri)
        bob = Baresip(
            workdir, "bob", ref.target, tone_hz=int(BARESIP_TONE_HZ), mediaenc="dtls_srtp"
        )
        stack.callback(bob.close)
        bob.dial(f"sip:{conf_id}@{ref.target.domain}")
        call.established = bob.wait_for("Call established", 10) and bob.wait_for(
            "DTLS-SRTP complete", 10
        )
        if not call.established:
            call.bob_log, call.bob_messages = bob.log, bob.sip_messages()
            return call
        assert wait_until(lambda: len(dep.focus.rekey.rounds) >= 1, 5)  # bob's join rekeys alice

        legs = dep.mixer._conferences[conf_id].legs

        def bob_leg() -> MixerLeg | None:
            streams = [s["audio"] for leg_id, s in legs.items() if "/bob/" in leg_id]
            return MixerLeg.of(streams[0]) if streams else None

        def bob_rx() -> int:
            leg = bob_leg()
            return leg.rx_ok if leg else 0

        conf.exchange_media(2.0)
        wait_until(lambda: bob.rx_bitrate() > 0 and bob_rx() >= 50, 8)
        alice = conf.participants["alice"].legs["audio"]
        call.alice = alice.stats
        call.alice_tone_ratio = alice.tone_ratios([BARESIP_TONE_HZ])[BARESIP_TONE_HZ]
        call.mixer = MixerStats(**vars(dep.mixer.stats))
        call.bob_before = bob_leg()
        call.baresip_rx_bitrate = bob.rx_bitrate()
        call.ledger_before = _ledger(ref)

        # A later join rekeys every member (R6): a re-offer with a new identity and tls-id.
        rounds = len(dep.focus.rekey.rounds)
        if conf.join("carol", OfferSpec()).status == 200:
            if wait_until(lambda: len(dep.focus.rekey.rounds) > rounds, 10):
                call.rekey_round = dep.focus.rekey.rounds[-1]
            rx_before = bob_rx()
            wait_until(lambda: bob_rx() >= rx_before + 50, 5)
        call.bob_after = bob_leg()
        call.ledger_after = _ledger(ref)

        bob.command("hangup")  # its RTCP BYE goes out now
        members = dep.focus.conferences[conf_id].legs.values
        wait_until(lambda: "bob" not in {leg.user for leg in members()}, 5)
        call.bob_log, call.bob_messages = bob.log, bob.sip_messages()
    return call


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DtlsCall]:
    yield run_call(tmp_path_factory.mktemp("baresip-dtls"))


def _joined(call: DtlsCall) -> None:
    assert call.created == 200
    assert call.established, call.bob_log[-3000:]


def _captured(call: DtlsCall) -> Path:
    _joined(call)
    need_tshark()
    if call.capture is None:
        pytest.skip(call.no_capture)
    return call.capture


def _offer_and_answer(call: DtlsCall, capture: Path) -> tuple[SdpSeen, SdpSeen]:
    """baresip's INVITE (the one with credentials) and the focus's 200 OK, as tshark read them."""
    assert call.keylog is not None
    seen = sdp_over_tls(capture, call.keylog, call.sip_port)
    offers = [s for s in seen if s.first_line.startswith("INVITE sip:conf-")]
    assert offers, [s.first_line for s in seen]
    offer = offers[-1]
    answer = next(
        s
        for s in seen
        if s.frame > offer.frame
        and s.tcp_stream == offer.tcp_stream
        and s.first_line.startswith("SIP/2.0 200")
    )
    return offer, answer


def _bob_streams(rows: list[LedgerRow]) -> list[LedgerRow]:
    return [r for r in rows if "/bob/" in r.peer]


def _exchange(messages: list[str], request: str) -> tuple[list[str], list[str]]:
    """The SDP lines of the last request that begins with `request`, and of its 200 OK."""
    i = max(n for n, m in enumerate(messages) if m.startswith(request))
    reply = next(m for m in messages[i + 1 :] if m.startswith("SIP/2.0 200"))
    return _sdp(messages[i]), _sdp(reply)


def _sdp(message: str) -> list[str]:
    return [line for line in message.split("\n") if line[:2] in ("m=", "a=")]


def test_baresip_exchanges_dtls_srtp_media_and_every_packet_authenticates(call: DtlsCall) -> None:
    _joined(call)
    offer, answer = _exchange(call.bob_messages, "INVITE sip:conf-")
    m = next(i for i, line in enumerate(offer) if line.startswith("m="))
    assert offer[m].startswith("m=audio ") and " UDP/TLS/RTP/SAVPF " in offer[m]
    session_level = offer[:m]
    assert "a=setup:actpass" in session_level
    assert any(a.startswith("a=fingerprint:SHA-256 ") for a in session_level)
    assert not any(a.startswith(("a=tls-id", "a=rtcp-mux")) for a in offer)
    assert "a=setup:active" in answer and any(a.startswith("a=tls-id:") for a in answer)
    log = call.bob_log
    assert "verified sha-256 fingerprint OK" in log  # baresip checked the mixer's certificate
    assert f"DTLS-SRTP complete (audio/RTP) Profile={SUITE}" in log
    assert "failed to decrypt" not in log and call.baresip_rx_bitrate > 0

    # confsec's participant: everything it received authenticated, and it carried baresip.
    assert call.alice is not None and call.alice.received > 0
    # What alice received is the mixer's SRTP and SRTCP: every SRTP packet authenticated.
    media = call.alice.received - call.alice.rtcp_accepted
    assert call.alice.authenticated == media and call.alice.auth_failed == 0
    assert call.alice_tone_ratio > 0.5
    # The mixer: baresip's packets authenticated under the handshake's keys; none refused.
    assert call.bob_before is not None and call.mixer is not None
    assert call.bob_before.rx_ok >= 50 and call.bob_before.rx_auth_failed == 0
    assert call.bob_before.tx_packets > 0
    assert call.mixer.auth_failed == 0 and call.mixer.plain_mixed == 0
    bob = _bob_streams(call.ledger_before)
    assert sorted(r.direction for r in bob) == ["recv", "send"]
    assert all(r.suite == SUITE and r.packets_seen for r in bob)


def test_tshark_reads_the_handshake_the_sdp_signalled(call: DtlsCall) -> None:
    capture = _captured(call)
    offer, answer = _offer_and_answer(call, capture)
    assert offer.proto == answer.proto == "UDP/TLS/RTP/SAVPF"
    assert offer.values("setup") == ["actpass"] and answer.values("setup") == ["active"]
    assert offer.values("tls-id") == [] and len(answer.values("tls-id")) == 1
    (handshake,) = [
        h
        for h in dtls_handshakes(capture)
        if (h.client_port, h.server_port) == (answer.port, offer.port)
    ]  # the mixer is the client (setup:active), as the answer said
    assert handshake.version == DTLS_1_2
    assert handshake.profile == SRTP_AES128_CM_HMAC_SHA1_80
    assert SRTP_AES128_CM_HMAC_SHA1_80 in handshake.offered_profiles
    # Each certificate is the one the SDP of its sender signalled (RFC 8122 section 5).
    assert handshake.fingerprints[offer.port] in offer.fingerprints
    assert handshake.fingerprints[answer.port] in answer.fingerprints
    # No media before the handshake: baresip's first RTP follows its last handshake flight.
    rtp = udp_payload_frames(capture, offer.port, answer.port)
    assert len(rtp) >= 50
    assert min(rtp) > handshake.last_handshake_frame[offer.port]


def test_baresip_sends_plain_rtcp_where_no_association_was_made(call: DtlsCall) -> None:
    capture = _captured(call)
    offer, answer = _offer_and_answer(call, capture)
    rtcp_src, rtcp_dst = offer.port + 1, answer.port + 1  # no rtcp-mux: RTP port + 1
    flow = f"udp.srcport=={rtcp_src} && udp.dstport=={rtcp_dst}"
    assert fields(capture, f"udp.port=={rtcp_dst} && dtls", ["frame.number"]) == []
    names = ["rtcp.pt", "rtcp.app.name", "rtcp.sdes.text"]
    rows = fields(capture, f"{flow} && rtcp && !icmp", names)
    types = {pt for r in rows for pt in r[0]}
    # SRTCP encrypts all but the first 8 octets: a readable APP name or SDES item is plain RTCP.
    assert "PING" in {n for r in rows for n in r[1]}  # APP, as the call starts
    assert {"202", "203"} <= types  # SDES and BYE, at the hang-up
    assert "sips:bob@conference.example.test" in {t for r in rows for t in r[2]}  # the CNAME
    unreachable = f"icmp.type==3 && icmp.code==3 && udp.dstport=={rtcp_dst}"
    assert fields(capture, unreachable, ["frame.number"])  # nobody listens on the mixer's + 1


def test_confsec_analyze_fails_r3_on_baresips_plain_rtcp(call: DtlsCall, tmp_path: Path) -> None:
    capture = _captured(call)
    assert call.keylog is not None
    # Only this call's ports: other tests on the machine may have sent UDP on lo meanwhile.
    seen = sdp_over_tls(capture, call.keylog, call.sip_port)
    ports = sorted({s.port + d for s in seen for d in (0, 1)})
    keep = " || ".join([f"tcp.port=={call.sip_port}", *(f"udp.port=={p}" for p in ports)])
    sliced = tmp_path / "call.pcap"
    subprocess.run(
        [need_tshark(), "-r", str(capture), "-Y", keep, "-F", "pcap", "-w", str(sliced)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    _, verdicts, findings, output = analyze(tmp_path, sliced, "--keylog", str(call.keylog))
    offer, answer = _offer_and_answer(call, capture)
    flow = f"127.0.0.1:{offer.port + 1} -> 127.0.0.1:{answer.port + 1}"
    plain = [f for f in findings["findings"] if f.get("kind") == "plain-rtcp"]
    assert [flow in f["sentence"] for f in plain] == [True], json.dumps(findings)[:3000]
    assert verdicts["R3"] == "fail"
    assert verdicts["R2"] == "pass", output[-3000:]  # every certificate matched its fingerprint


def test_baresip_answers_a_rekey_with_actpass_and_keeps_its_keys(call: DtlsCall) -> None:
    _joined(call)
    offer, first_answer = _exchange(call.bob_messages, "INVITE sip:conf-")
    reoffer, answer = _exchange(call.bob_messages, "INVITE sip:bob")

    def attrs(lines: list[str], name: str) -> set[str]:
        return {a.split(":", 1)[1] for a in lines if a.startswith(f"a={name}:")}

    # The focus asks for a new association: actpass, a new identity and a new tls-id.
    assert attrs(reoffer, "setup") == {"actpass"}
    assert attrs(reoffer, "fingerprint").isdisjoint(attrs(first_answer, "fingerprint"))
    assert attrs(reoffer, "tls-id") and attrs(reoffer, "tls-id") != attrs(first_answer, "tls-id")
    first = attrs(offer, "fingerprint")
    # baresip's answer: actpass (RFC 5763 section 5: an answer is active or passive), no
    # tls-id, and the certificate of its first offer; and no second handshake.
    assert attrs(answer, "setup") == {"actpass"}
    assert not attrs(answer, "tls-id") and attrs(answer, "fingerprint") == first
    assert call.bob_log.count("DTLS-SRTP complete") == 1
    # The round re-offered both members; only alice got a new association and keys, and the
    # reference counts bob's leg as not rekeyed (it stays stale for the next round).
    assert call.rekey_round is not None and call.rekey_round.legs == 2
    assert (call.rekey_round.ok, call.rekey_round.failed) == (1, 1), call.rekey_round
    assert call.bob_before is not None and call.bob_after is not None
    assert call.bob_after.tls_id == call.bob_before.tls_id
    assert _bob_streams(call.ledger_after) == _bob_streams(call.ledger_before)

    def alice_keys(rows: list[LedgerRow]) -> set[str]:
        return {r.key_fingerprint for r in rows if "/alice/" in r.peer}

    assert alice_keys(call.ledger_after) - alice_keys(call.ledger_before)
    # Media goes on under the first keys, and still authenticates.
    assert call.bob_after.rx_ok >= call.bob_before.rx_ok + 50
    assert call.bob_after.rx_auth_failed == 0 and "failed to decrypt" not in call.bob_log
