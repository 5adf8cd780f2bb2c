"""R3/R4 on synthetic captures: every RTP/RTCP stream is judged or named, never passed on trust.

A stream tried against the known keys for a few packets and then set aside as "unkeyed" would
let R3 pass as soon as one other stream was keyed, even when the set-aside stream was plain RTP
from its first packet. So each stream must be judged (it authenticates under a known key; its
packets are plain RTCP; SDP negotiated it as RTP/AVP; SDP negotiated it as RTP/SAVP and it does
not authenticate under any known key) or named as unjudged, and an unjudged stream makes the
verdict inconclusive.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from confsec.analyze.command import analyze, judge
from confsec.analyze.findings import SrtpKey
from confsec.analyze.tlskeys import parse_tshark_sdp
from tests.analyze.synthetic import (
    SUITE,
    Capture,
    rtcp_sr,
    rtp,
    run_analyze,
    sdp,
    sip_invite,
    srtp_session,
)

HOST = "127.0.0.1"
MEDIA = "No plain RTP or RTCP on media ports"
REUSE = "No key stream is reused"


def new_key() -> SrtpKey:
    return SrtpKey(SUITE, secrets.token_bytes(16), secrets.token_bytes(14))


def keyed_stream(cap: Capture, k: SrtpKey, sport: int, dport: int, ssrc: int, n: int = 30) -> None:
    sender = srtp_session(k.key, k.salt)
    for seq in range(1, n + 1):
        cap.udp(HOST, sport, HOST, dport, sender.protect(rtp(seq, ssrc)))


def plain_stream(cap: Capture, sport: int, dport: int, ssrc: int, n: int = 30) -> None:
    for seq in range(1, n + 1):
        cap.udp(HOST, sport, HOST, dport, rtp(seq, ssrc))


def test_a_plain_stream_beside_a_keyed_one_is_named_and_inconclusive(tmp_path: Path) -> None:
    """The case of the finding: one SRTP stream under a known key, one plain RTP stream (no SDP
    anywhere). The plain one cannot be judged (no key, no negotiation), so R3 is inconclusive
    and names it, instead of passing on the strength of the other stream."""
    k = new_key()
    cap = Capture()
    keyed_stream(cap, k, 40000, 50000, 0x1111AAAA)
    plain_stream(cap, 40002, 50002, 0x2222BBBB)
    res = run_analyze(tmp_path, cap.write(tmp_path / "c.pcap"), [k])
    media = res.scenario(MEDIA)
    assert media["verdict"] == "inconclusive", media
    assert "127.0.0.1:40002 -> 127.0.0.1:50002" in media["reason"], media
    assert "SSRC 0x2222bbbb" in media["reason"], media
    assert "40000" not in media["reason"], media  # the keyed stream was judged
    counts = media["observed"]["counts"]
    assert counts["streams judged"] == 1 and counts["streams unjudged"] == 1, counts
    assert counts["packets judged"] == 30, counts
    assert res.requirement("R3") == "inconclusive"
    # R4 cannot vouch for a stream whose key it does not know either.
    assert res.scenario(REUSE)["verdict"] == "inconclusive"
    assert res.findings["findings"] == []
    (named,) = {u["stream"] for u in res.findings["unjudged"] if u["requirement"] == "R3"}
    assert named == "RTP 127.0.0.1:40002 -> 127.0.0.1:50002 SSRC 0x2222bbbb"


def test_plain_rtp_in_a_stream_negotiated_as_savp_fails(tmp_path: Path) -> None:
    """SDP in the capture says the flow to 127.0.0.1:50002 is RTP/SAVP; what arrives there does
    not authenticate under any known key, so it is a finding, not an "unkeyed" stream."""
    k = new_key()
    inline = base64.b64encode(k.key + k.salt).decode()
    offer = sdp(HOST, 50002, "RTP/SAVP", f"crypto:1 {SUITE} inline:{inline}")
    cap = Capture()
    cap.udp(HOST, 5999, HOST, 5060, sip_invite(offer))
    plain_stream(cap, 40002, 50002, 0x2222BBBB)
    res = run_analyze(tmp_path, cap.write(tmp_path / "c.pcap"))
    media = res.scenario(MEDIA)
    assert media["verdict"] == "fail", media
    assert "unauthenticated-rtp-in-savp-stream" in res.kinds(), res.findings
    (f,) = [
        f for f in res.findings["findings"] if f["kind"] == "unauthenticated-rtp-in-savp-stream"
    ]
    assert f["packets"] == 30 and f["requirement"] == "R3"
    assert "127.0.0.1:50002" in f["sentence"]
    assert res.requirement("R3") == "fail"


def test_a_savp_stream_with_no_key_known_is_unjudged(tmp_path: Path) -> None:
    """Negotiated as RTP/SAVP, but no key at all is known (not in the SDP, no --keys): the
    analyser cannot tell plain RTP from SRTP and says so."""
    cap = Capture()
    cap.udp(HOST, 5999, HOST, 5060, sip_invite(sdp(HOST, 50002, "RTP/SAVP")))
    plain_stream(cap, 40002, 50002, 0x2222BBBB)
    res = run_analyze(tmp_path, cap.write(tmp_path / "c.pcap"))
    media = res.scenario(MEDIA)
    assert media["verdict"] == "inconclusive", media
    assert "RTP/SAVP" in media["reason"] and "0x2222bbbb" in media["reason"], media


def test_srtcp_is_judged_by_its_tag_not_by_its_shape(tmp_path: Path) -> None:
    """RTCP with bytes after its compound packets is not SRTCP until a known key authenticates
    it. Under the stream's key it is judged; under a key nobody gave, it is named unjudged."""
    k, other = new_key(), new_key()
    cap = Capture()
    keyed_stream(cap, k, 40000, 50000, 0x1111AAAA)
    mine, theirs = srtp_session(k.key, k.salt), srtp_session(other.key, other.salt)
    for i in range(1, 6):
        cap.udp(HOST, 40000, HOST, 50000, mine.protect_rtcp(rtcp_sr(0x1111AAAA, i)))
        cap.udp(HOST, 40004, HOST, 50004, theirs.protect_rtcp(rtcp_sr(0x3333CCCC, i)))
    capture = cap.write(tmp_path / "c.pcap")
    res = run_analyze(tmp_path / "one", capture, [k])
    media = res.scenario(MEDIA)
    assert media["verdict"] == "inconclusive", media
    assert "RTCP 127.0.0.1:40004 -> 127.0.0.1:50004 SSRC 0x3333cccc" in media["reason"], media
    assert "50000" not in media["reason"], media
    # With both keys every stream is judged, the SRTCP ones included.
    res = run_analyze(tmp_path / "both", capture, [k, other])
    media = res.scenario(MEDIA)
    assert media["verdict"] == "pass", media
    assert media["observed"]["counts"]["streams judged"] == 3, media


def test_every_verdict_carries_what_it_observed(tmp_path: Path) -> None:
    """verdicts.json gives each scenario the evidence it rests on (`observed`: counts, notes)."""
    k, k2 = new_key(), new_key()
    cap = Capture()
    keyed_stream(cap, k, 40000, 50000, 0x1111AAAA)
    keyed_stream(cap, k2, 40002, 50002, 0x2222BBBB)
    res = run_analyze(tmp_path, cap.write(tmp_path / "c.pcap"), [k, k2])
    assert (res.requirement("R3"), res.requirement("R4")) == ("pass", "pass")
    for r in res.verdicts["requirements"]:
        for s in r["scenarios"]:
            observed = s["observed"]
            assert set(observed) == {"counts", "controls", "summary"}, s
            assert observed["counts"], s  # no verdict without something counted
    media = res.scenario(MEDIA)["observed"]
    assert media["counts"]["streams judged"] == 2 and media["counts"]["packets judged"] == 60
    assert media["counts"]["streams unjudged"] == 0
    assert "2 streams judged" in media["summary"]
    reuse = res.scenario(REUSE)["observed"]
    assert reuse["counts"]["keyed streams"] == 2 and reuse["counts"]["shared key streams"] == 0


def test_a_key_learned_late_still_judges_the_stream(tmp_path: Path) -> None:
    """Keys read from clear signalling become known in the middle of the pass; a stream that
    began before its key was seen is tried again, and its early packets are judged under it."""
    k = new_key()
    inline = base64.b64encode(k.key + k.salt).decode()
    sender = srtp_session(k.key, k.salt)
    cap = Capture()
    for seq in range(1, 21):  # more packets than the first trial looks at
        cap.udp(HOST, 40000, HOST, 50000, sender.protect(rtp(seq, 0x1111AAAA)))
    cap.udp(
        HOST,
        5999,
        HOST,
        5060,
        sip_invite(sdp(HOST, 50000, "RTP/SAVP", f"crypto:1 {SUITE} inline:{inline}")),
    )
    for seq in range(21, 41):
        cap.udp(HOST, 40000, HOST, 50000, sender.protect(rtp(seq, 0x1111AAAA)))
    a, _ = analyze(cap.write(tmp_path / "c.pcap"), [], [])
    (media,) = [j for j in judge(a, []) if j.name == MEDIA]
    # The packets between the first trial and the key were never tried: named, not passed.
    assert str(media.verdict) == "inconclusive", media.reason
    assert "0x1111aaaa" in media.reason and "not tried" in media.reason, media.reason
    assert media.evidence.counts["packets judged"] >= 28, media.evidence


def test_sdp_read_from_tls_with_the_key_log_negotiates_streams(tmp_path: Path) -> None:
    """With --keylog, tshark prints the SDP fields of the decrypted SIP; the m= lines found
    there negotiate streams exactly as clear SDP does (tshark itself is not needed here: its
    output is given as `-T fields` prints it)."""
    offerer, answerer = new_key(), new_key()
    b64 = [base64.b64encode(k.key + k.salt).decode() for k in (offerer, answerer)]
    output = (
        f"{HOST}\t\t{HOST}\t50002\tRTP/SAVP\t"
        f"rtpmap:0 PCMU/8000,crypto:1 {SUITE} inline:{b64[0]},rtcp-mux\n"
        # a session-level c= then a media-level one: the media-level address is the stream's
        f"{HOST}\t\t{HOST},127.0.0.2\t50000\tRTP/SAVP\tcrypto:1 {SUITE} inline:{b64[1]}\n"
    )
    tls = parse_tshark_sdp(output)
    assert tls.media == [(HOST, 50002, "RTP/SAVP"), ("127.0.0.2", 50000, "RTP/SAVP")]
    assert {(k.key, k.salt) for k in tls.keys} == {(k.key, k.salt) for k in (offerer, answerer)}
    assert tls.sdp_frames == 2
    cap = Capture()
    sender = srtp_session(offerer.key, offerer.salt)
    for seq in range(1, 31):  # the offerer sends SRTP to the answerer's address: judged
        cap.udp(HOST, 40000, "127.0.0.2", 50000, sender.protect(rtp(seq, 0x1111AAAA)))
    plain_stream(cap, 40002, 50002, 0x2222BBBB)  # plain RTP where SRTP was agreed: a finding
    a, _ = analyze(cap.write(tmp_path / "c.pcap"), tls.keys, [], tls.media, tls.sdp_frames)
    by_name = {j.name: j for j in judge(a, [])}
    media = by_name[MEDIA]
    assert str(media.verdict) == "fail", media.reason
    assert "127.0.0.1:50002" in media.reason and "0x2222bbbb" in media.reason
    assert media.evidence.counts["streams judged"] == 2
    sdes = by_name["No SDES key is sent over unprotected signalling"]
    assert str(sdes.verdict) == "pass", sdes.reason
    assert sdes.evidence.counts["TLS frames with SDP"] == 2
