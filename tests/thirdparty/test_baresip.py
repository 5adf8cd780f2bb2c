"""baresip participants on the reference: SIP over mutual TLS, mandatory SRTP (SDES).

What confsec concludes about baresip 1.0 (Debian 12, libre 1.1), pinned here:

1. Against the reference as it ships (SIPS only, SHA-256 digest only, RFC 8760) baresip cannot
   join: it completes mutual TLS and sends an RTP/SAVP offer with a=crypto, then gives up on the
   SHA-256 challenge ("Function not implemented": its SIP stack does MD5 digest only).
2. Offering MD5 beside SHA-256 (interop "digest-md5", as RFC 8760 §2.4 allows) does not help:
   libre fails the whole 401 when any challenge in it is not MD5. Only an MD5-only challenge
   ("digest-md5-only") gets it admitted.
3. Admitted, it still cannot ACK the 200 OK: the focus's Contact is a SIPS URI (RFC 3261 12.1.1,
   for a SIPS request) and libre sends only to `sip:` next hops. With "sip-over-tls" it dials a
   `sip:` conference URI over TLS, gets a `sip:...;transport=tls` Contact, and stays.
4. With both relaxations two baresip instances join one conference a confsec participant created,
   SRTP (AES_CM_128_HMAC_SHA1_80) flows both ways and the mixer authenticates every packet; a
   plain-RTP offer is still refused. But baresip 1.0 does not take a new SDES key from a
   re-INVITE: after the focus rekeys (R6, a later join) it can no longer decrypt what the mixer
   sends, and it answers the re-INVITE with its old sending key (the mixer's key-stream ledger
   shows the same key and SSRC in two epochs). The test lets both baresip joins fall in one
   rekey batch (a wider batching window) so that neither is re-keyed before the media check.
5. RTCP (R3). baresip offers neither a=rtcp-mux nor a=rtcp, so the focus answers `a=rtcp:<port>`,
   a mixer socket of its own (RFC 3605), and baresip honours it: its RTCP goes from its RTP
   port + 1 to that port. Most of it is SRTCP (a protected APP "PING" as the call starts, SR and
   SDES every 5 s), but tshark reads two datagrams as plain RTCP: an APP "PING" sent just after
   the 200 OK, before the protected one, and at the hang-up a BYE ("Adjo") + SDES compound with
   the CNAME `sips:bob@...` in clear. The mixer records both as an observation about that peer
   (the conference is the system under test, not baresip), each datagram matched to its frame
   in a capture: the PING often beats the focus's key install to the mixer, which judges plain
   RTCP before the install too, and the BYE follows the 200 OK to the SIP BYE, which the
   released leg's RTCP port lingers to read. What the mixer sends baresip is SRTCP, which
   baresip decrypts without a word.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec
from confsec.media import rtcp
from confsec.reference.deployment import EmbeddedReference
from confsec.reference.mixer_rtcp import RtcpObservation
from confsec.reference.rekey import DEFAULT_WINDOW_S
from confsec.runtime.loop import LoopThread
from tests.analyze.recording import recording
from tests.thirdparty.baresip import INTEROP, Baresip, conference_id, need_baresip, wait_until
from tests.thirdparty.test_baresip_dtls import _exchange
from tests.thirdparty.tshark_view import fields, need_tshark


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread("baresip-test")
    yield lt
    lt.close()


def _reference(tmp_path: Path, interop: frozenset[str] = frozenset()) -> EmbeddedReference:
    need_baresip()
    return EmbeddedReference.start(tmp_path / "ref", interop=interop)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[EmbeddedReference]:
    ref = _reference(tmp_path)
    yield ref
    ref.stop()


def test_baresip_cannot_answer_a_sha256_digest_challenge(
    tmp_path: Path, reference: EmbeddedReference
) -> None:
    ua = Baresip(tmp_path, "bob", reference.target)
    try:
        ua.dial(reference.target.factory_uri)
        assert ua.wait_for("Function not implemented", 10), ua.log[-3000:]
    finally:
        ua.close()
    log = ua.log
    assert "m=audio" in log and "RTP/SAVP" in log and "a=crypto:" in log  # SRTP offered
    assert "algorithm=SHA-256" in log  # the challenge it could not answer
    assert "Authorization:" not in log
    assert reference.deployment.focus.conferences == {}


def test_baresip_gives_up_even_when_md5_is_offered_beside_sha256(tmp_path: Path) -> None:
    """RFC 8760 §2.4: SHA-256 and MD5 challenges in one 401; libre refuses the whole 401."""
    ref = _reference(tmp_path, frozenset({"digest-md5", "sip-over-tls"}))
    ua = None
    try:
        ua = Baresip(tmp_path, "bob", ref.target)
        ua.dial(f"sip:conf-factory@{ref.target.domain}")
        assert ua.wait_for("Function not implemented", 10), ua.log[-3000:]
        log = ua.log
        assert "algorithm=SHA-256" in log and "algorithm=MD5" in log
        assert "Authorization:" not in log
        assert ref.deployment.focus.conferences == {}
    finally:
        if ua is not None:
            ua.close()
        ref.stop()


def test_baresip_cannot_ack_a_sips_contact(tmp_path: Path, loop: LoopThread) -> None:
    """With only MD5 digest relaxed, baresip is admitted with SRTP, then drops the call.

    The 200 OK's Contact is a SIPS URI, as RFC 3261 12.1.1 demands for a SIPS request, and
    baresip 1.0's SIP stack (libre `sip_request`) sends only to `sip:` next hops: it closes the
    session with ENOSYS before sending the ACK.
    """
    ref = _reference(tmp_path, frozenset({"digest-md5-only"}))
    dep = ref.deployment
    conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
    ua = None
    try:
        assert conf.create("alice", OfferSpec()).status == 200
        assert conf.conference_uri is not None
        conf_id = conference_id(conf.conference_uri)
        ua = Baresip(tmp_path, "bob", ref.target)
        ua.dial(conf.conference_uri)
        assert ua.wait_for("session closed: Function not implemented", 15), ua.log[-3000:]
        log = ua.log
        assert "algorithm=MD5" in log and "algorithm=SHA-256" not in log
        assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in log
        assert ";isfocus" in log and "Contact: <sips:" in log
        assert "\nACK sips:conf-" not in log.split("SIP/2.0 200 OK")[-1]  # no ACK for the 200
        users_admitted = [leg.user for leg in dep.focus.conferences[conf_id].legs.values()]
        assert "bob" in users_admitted  # the focus admitted it, with SRTP on the mixer leg
    finally:
        if ua is not None:
            ua.close()
        conf.close()
        ref.stop()


def test_two_baresip_participants_join_with_srtp_under_the_interop_profile(
    tmp_path: Path, loop: LoopThread
) -> None:
    ref = _reference(tmp_path, INTEROP)
    dep = ref.deployment
    # Both baresip joins in one rekey batch, so that neither gets a rekey re-INVITE before the
    # media check (baresip 1.0 cannot apply one, see the end of this test).
    dep.focus.rekey.window = 3.0
    conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
    uas: dict[str, Baresip] = {}
    try:
        assert conf.create("alice", OfferSpec()).status == 200
        assert conf.conference_uri is not None
        conf_id = conference_id(conf.conference_uri)
        for name, tone_hz in (("bob", 440), ("carol", 660)):
            uas[name] = Baresip(tmp_path, name, ref.target, tone_hz=tone_hz)
        for ua in uas.values():  # a sip: URI over TLS (sip-over-tls), to the outbound proxy
            ua.dial(f"sip:{conf_id}@{ref.target.domain}")
        for name, ua in uas.items():
            assert ua.wait_for("Call established", 10), f"{name}:\n{ua.log[-3000:]}"
            log = ua.log
            assert "algorithm=MD5" in log and "Authorization: Digest" in log
            assert "Contact: <sip:conf-" in log and ";transport=tls>;isfocus" in log
            assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in log
            assert "\nACK sip:conf-" in log

        legs = dep.mixer._conferences[conf_id].legs

        def streams(user: str) -> list:
            return [s["audio"] for leg_id, s in legs.items() if f"/{user}/" in leg_id]

        # baresip -> mixer: SRTP the mixer authenticates; mixer -> baresip: SRTP baresip decrypts.
        assert wait_until(lambda: all(ua.rx_bitrate() > 0 for ua in uas.values()), 8)
        assert wait_until(lambda: all(s.rx.ok >= 50 for u in uas for s in streams(u)), 8)
        for name, ua in uas.items():
            (stream,) = streams(name)
            assert stream.rx.auth_failed == 0 and stream.secure_rx and stream.secure_tx
            assert stream.tx is not None and stream.tx.packets > 0
            assert "failed to decrypt" not in ua.log, f"{name}:\n{ua.log[-2000:]}"
        assert dep.mixer.stats.auth_failed == 0 and dep.mixer.stats.plain_mixed == 0
        rows = {str(r.stream): r for r in dep.mixer.ledger.entries()}
        for name in uas:
            recv = [r for k, r in rows.items() if f"/{name}/" in k and r.stream.direction == "recv"]
            assert recv and recv[0].suite == "AES_CM_128_HMAC_SHA1_80" and recv[0].packets_seen
        assert dep.mixer.ledger.findings() == []

        # Plain RTP is still refused, interop profile or not.
        assert conf.join("dave", OfferSpec(secure=False)).status == 488
        assert {leg.user for leg in dep.focus.conferences[conf_id].legs.values()} == {
            "alice",
            "bob",
            "carol",
        }

        # A later join rekeys every member (R6). baresip 1.0 answers the re-INVITE with its old
        # sending key and keeps its old receiving key, so it can no longer decrypt.
        assert wait_until(lambda: len(dep.focus.rekey.rounds) >= 1, 6)  # the batch's own round
        dep.focus.rekey.window = DEFAULT_WINDOW_S
        assert conf.join("erin", OfferSpec()).status == 200
        for name, ua in uas.items():
            assert ua.wait_for("got re-INVITE", 10), f"{name}:\n{ua.log[-2000:]}"
            assert ua.wait_for("failed to decrypt RTP packet", 10), f"{name}:\n{ua.log[-2000:]}"
        reused = {s.peer.split("/")[1] for f in dep.mixer.ledger.findings() for s in f.streams}
        assert reused == set(uas)

        # The re-INVITEs kept the sip: Contact, so baresip's BYE still reaches the focus.
        assert all(
            "Contact: <sips:" not in ua.log.split("Call established")[1] for ua in uas.values()
        )
        uas["bob"].command("hangup")
        members = dep.focus.conferences[conf_id].legs.values
        assert wait_until(lambda: "bob" not in {leg.user for leg in members()}, 5)
        assert "\nBYE sip:conf-" in uas["bob"].log
    finally:
        for ua in uas.values():
            ua.close()
        conf.close()
        ref.stop()


def _frames_so_far(capture: Path, display_filter: str) -> list[int]:
    """The frames `display_filter` selects in a capture dumpcap is still writing. Its last
    packet may be cut short, which tshark reports with a non-zero exit: the rest is read."""
    argv = [need_tshark(), "-n", "-r", str(capture), "-Y", display_filter]
    proc = subprocess.run(
        [*argv, "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, timeout=60
    )
    return [int(n) for n in proc.stdout.split()]


def test_baresip_sends_plain_rtcp_app_and_bye_beside_srtcp_under_the_interop_profile(
    tmp_path: Path, loop: LoopThread
) -> None:
    """Point 5: baresip's RTCP in SDES mode, read by the mixer and by tshark on a capture."""
    need_tshark()
    ref = _reference(tmp_path, INTEROP)
    dep = ref.deployment
    dep.focus.rekey.window = 3.0  # one rekey batch, as in the test above
    record = dep.mixer.rtcp_record
    capture = tmp_path / "lo.pcap"
    uas: dict[str, Baresip] = {}
    with ExitStack() as stack:
        stack.callback(ref.stop)
        try:
            stack.enter_context(recording(capture, "udp or icmp"))
        except pytest.fail.Exception as exc:
            pytest.skip(f"dumpcap cannot capture on lo: {exc}")
        conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
        stack.callback(conf.close)
        assert conf.create("alice", OfferSpec()).status == 200
        assert conf.conference_uri is not None
        conf_id = conference_id(conf.conference_uri)
        for name, tone_hz in (("bob", 440), ("carol", 660)):
            uas[name] = Baresip(tmp_path, name, ref.target, tone_hz=tone_hz)
            stack.callback(uas[name].close)
        for ua in uas.values():
            ua.dial(f"sip:{conf_id}@{ref.target.domain}")
        for name, ua in uas.items():
            assert ua.wait_for("Call established", 10), f"{name}:\n{ua.log[-3000:]}"
        bob = uas["bob"]

        # 1. No rtcp-mux offered, so the focus names the mixer's own RTCP port (RFC 3605).
        offer, answer = _exchange(bob.sip_messages(), "INVITE sip:conf-")
        assert not any(a.startswith(("a=rtcp-mux", "a=rtcp:")) for a in offer), offer
        bob_rtp = int(next(a for a in offer if a.startswith("m=audio ")).split()[1])
        mixer_rtp = int(next(a for a in answer if a.startswith("m=audio ")).split()[1])
        (mixer_rtcp,) = [int(a.split(":")[1]) for a in answer if a.startswith("a=rtcp:")]
        assert "a=rtcp-mux" not in answer
        bob_rtcp = bob_rtp + 1  # no a=rtcp in the offer: RTP port + 1 (RFC 3550 11)
        legs = dep.mixer._conferences[conf_id].legs
        ((bob_leg, streams),) = [(k, s) for k, s in legs.items() if "/bob/" in k]
        stream = streams["audio"]
        assert stream.rtcp.port is not None and stream.rtcp.port.transport is not None
        assert stream.rtcp.port.transport.get_extra_info("sockname")[1] == mixer_rtcp
        assert stream.rtcp.remote == ("127.0.0.1", bob_rtcp)

        # Media both ways, and a few of the mixer's SRTCP reports have reached baresip.
        assert wait_until(lambda: bob.rx_bitrate() > 0 and record.sent >= 6, 8)

        # 2. The hang-up: baresip's RTCP BYE, after the 200 OK to its SIP BYE.
        bob.command("hangup")
        members = dep.focus.conferences[conf_id].legs.values
        assert wait_until(lambda: "bob" not in {leg.user for leg in members()}, 5)
        to_mixer = f"udp.srcport=={bob_rtcp} && udp.dstport=={mixer_rtcp}"
        refused = f"icmp.type==3 && icmp.code==3 && {to_mixer}"

        def bob_observation() -> RtcpObservation | None:
            return record.observations.get((bob_leg, "audio"))

        def bye_recorded() -> bool:
            o = bob_observation()
            return o is not None and any(d[1] == rtcp.BYE for _, _, d in o.samples)

        assert wait_until(
            lambda: (
                bool(_frames_so_far(capture, f"{to_mixer} && !icmp && rtcp.pt==203"))
                and (bye_recorded() or bool(_frames_so_far(capture, refused)))
            ),
            10,
        ), f"no RTCP BYE from baresip's {bob_rtcp} to the mixer's {mixer_rtcp} in the capture"
        observed = bob_observation()
        sent = record.sent
        bob_log = bob.log

    # 3. tshark's reading of what baresip sent to the mixer's RTCP port (its own heuristics).
    names = ["frame.number", "rtcp.pt", "rtcp.app.name", "rtcp.sdes.text", "udp.payload"]
    rows = fields(capture, f"{to_mixer} && !icmp", names)
    frames = {int(r[0][0]): (r[1], r[2], r[3], bytes.fromhex(r[4][0])) for r in rows}
    plain = {n: f for n, f in frames.items() if rtcp.is_plain_rtcp(f[3])}
    # SRTCP: not a compound that fills the datagram, and the E flag of the word before the
    # 10-octet tag set. (Not `rtcp.srtcp_trailer`: baresip's protected PING begins with APP.)
    srtcp = {
        n: f
        for n, f in frames.items()
        if n not in plain and len(f[3]) >= 22 and f[3][-14] >> 7 and 200 <= f[3][1] <= 204
    }
    summary = "\n".join(
        f"frame {n}: {len(data)} octets, "
        + (f"plain RTCP {pts} {apps} {texts}" if n in plain else "SRTCP (encrypted)")
        for n, (pts, apps, texts, data) in sorted(frames.items())
    )
    print(f"baresip {bob_rtcp} -> mixer {mixer_rtcp}:\n{summary}")
    assert set(plain) | set(srtcp) == set(frames), summary
    pings = [n for n, f in plain.items() if f[0] == ["204"] and f[1] == ["PING"]]
    byes = [n for n, f in plain.items() if f[0] == ["203", "202"]]
    assert len(pings) == 1 and len(byes) == 1, summary  # APP first, BYE and SDES at the end
    (ping,), (bye,) = pings, byes
    assert min(frames) == ping and max(frames) == bye, summary
    cname = "sips:bob@conference.example.test"
    assert cname in plain[bye][2], f"frame {bye}: {plain[bye][2]}"  # SDES CNAME in clear
    assert cname.encode() in plain[bye][3]
    # confsec's own parser agrees on the packet types (BYE before SDES: no SR or RR first).
    assert [p.packet_type for p in rtcp.parse_compound(plain[ping][3])] == [rtcp.APP]
    assert [p.packet_type for p in rtcp.parse_compound(plain[bye][3])] == [rtcp.BYE, rtcp.SDES]
    # Between them baresip protects its RTCP: a PING again right after the plain one, then an
    # SR (and its SDES) every 5 s, which this call, hung up after about 2 s, seldom reaches.
    assert srtcp and all(ping < n < bye for n in srtcp), summary
    # It honours a=rtcp: nothing went to the mixer's RTP port + 1.
    if mixer_rtcp != mixer_rtp + 1:
        assert fields(capture, f"udp.dstport=={mixer_rtp + 1}", ["frame.number"]) == []

    # The mixer's record of bob: an observation about that peer (baresip is not the system
    # under test here), with each plain datagram it dropped. The PING came before the focus's
    # install reached the mixer, which judges plain RTCP from then on; the BYE came after the
    # 200 OK to the SIP BYE, while the released leg's RTCP port lingered to read it (no ICMP
    # port unreachable). Each sample is byte for byte one frame of the capture.
    assert fields(capture, refused, ["frame.number"]) == [], "the mixer's port was closed"
    assert observed is not None, "the mixer recorded nothing about baresip's plain RTCP"
    assert observed.source == ("127.0.0.1", bob_rtcp)
    assert observed.counts == {"plain": 2}, observed.sentence()  # its SRTCP all authenticated
    frame_of = {f[3]: n for n, f in plain.items()}
    kept = [frame_of.get(data) for _, _, data in observed.samples]
    print(f"observation about baresip (bob): {observed.sentence()}; frames {kept}")
    for line, frame in zip(observed.datagrams(), kept, strict=True):
        print(f"  frame {frame}: {line}")
    assert kept == [ping, bye], (kept, summary)
    assert "APP" in observed.datagrams()[0] and "BYE+SDES" in observed.datagrams()[1]

    # The mixer's own RTCP to baresip was all SRTCP: encrypted (E flag), no CNAME in clear.
    assert sent > 0
    from_mixer = f"udp.srcport=={mixer_rtcp} && udp.dstport=={bob_rtcp} && !icmp"
    back = fields(capture, from_mixer, names)
    print(f"mixer {mixer_rtcp} -> baresip {bob_rtcp}: frames {[int(r[0][0]) for r in back]}")
    assert back, f"no RTCP from the mixer's {mixer_rtcp} to baresip's {bob_rtcp}"
    for r in back:
        data = bytes.fromhex(r[4][0])
        trailer = rtcp.srtcp_trailer(data, 10)
        assert trailer is not None and trailer[0], f"frame {r[0][0]}: {data.hex()}"
        assert b"mixer@" not in data and not r[3], f"frame {r[0][0]}"
    assert "failed to decrypt RTCP" not in bob_log, bob_log[-2000:]
