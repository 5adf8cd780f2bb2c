"""Media hot-path costs: SRTP and SRTCP raw vs through the suite's wrappers, RTP helpers, tones.

Run: python benchmarks/media_srtp.py [--packets N] [--reps R]  (from a checkout; no install)

Prints packets per second (or milliseconds per call) so that a change to the wrappers can be
weighed against libsrtp itself. The anchor is raw pylibsrtp on the same packets in the same run:
each SRTP row prints "x raw", the anchor's rate over the row's (1.00 = no cost over libsrtp;
2.00 = the suite's path takes twice as long per packet). The suite's verification path is the
MediaLeg line: what every received datagram of a scenario goes through (counters, the recent
ring that trial decryption reads, SrtpReceiver.try_unprotect with the key-stream ledger's
bookkeeping, the fallback receiver after a rekey, PCMU payload kept for the tone detector).
The receiver wrapper hashes packets for the ledger only while the ledger is still sampling
(about the first 2,100 packets of a stream); "steady" measures after that, "first 2k" during it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pylibsrtp

# Run from a checkout without installing: the repository root holds the confsec package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confsec.media import rtcp
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import RtpPacket, build_rtp, peek_ssrc_seq, rtp_payload_bounds
from confsec.media.srtp import PROFILES, new_master_key, new_receiver, new_sender
from confsec.media.tone import ToneGenerator, detect_tones, pcmu_decode, pcmu_encode, tone_for

SEND = StreamId("bench", "peer", "audio", "send")
RECV = StreamId("peer", "bench", "audio", "recv")


def rate(n: int, fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def best(reps: int, make: Callable[[], tuple[int, Callable[[], object]]]) -> float:
    """Best rate of `reps` runs; `make` sets up fresh state (replay windows!) and returns the
    packet count and the loop to time. Best-of, because this machine is shared."""
    out = 0.0
    for _ in range(reps):
        count, loop = make()
        out = max(out, rate(count, loop))
    return out


def srtp(suite: str, n: int, reps: int) -> None:
    key, salt = new_master_key(suite)
    tx = new_sender(KeyStreamLedger(), SEND, suite, key, salt)
    plain = [build_rtp(0, s, 160 * s, 0x1234, b"\xd5" * 160) for s in range(n)]
    protected = [tx.protect(p) for p in plain]  # 172-octet RTP -> 182/188-octet SRTP
    bad = [q[:-1] + bytes([q[-1] ^ 1]) for q in protected[: n // 4]]
    cname = rtcp.sdes_cname(0x1234, "bench@confsec")
    profile = PROFILES[suite].libsrtp_profile
    warm = 2200  # packets after which the ledger sample is complete

    def raw_session(direction: int) -> pylibsrtp.Session:
        policy = pylibsrtp.Policy(key=key + salt, ssrc_type=direction, srtp_profile=profile)
        return pylibsrtp.Session(policy)

    def raw_unprotect() -> tuple[int, Callable[[], object]]:
        f = raw_session(pylibsrtp.Policy.SSRC_ANY_INBOUND).unprotect

        def loop() -> None:
            for q in protected:
                f(q)

        return len(protected), loop

    def receiver(first: bool) -> tuple[int, Callable[[], object]]:
        rx = new_receiver(KeyStreamLedger(), RECV, suite, key, salt)
        f = rx.try_unprotect
        if first:
            todo = protected[:2000]
        else:
            for q in protected[:warm]:
                f(q)
            todo = protected[warm:]

        def loop() -> None:
            for q in todo:
                f(q)

        return len(todo), loop

    def raw_fail() -> tuple[int, Callable[[], object]]:
        f = raw_session(pylibsrtp.Policy.SSRC_ANY_INBOUND).unprotect
        error = pylibsrtp.Error

        def loop() -> None:
            for q in bad:
                try:
                    f(q)
                except error:
                    pass

        return len(bad), loop

    def try_fail() -> tuple[int, Callable[[], object]]:
        f = new_receiver(KeyStreamLedger(), RECV, suite, key, salt).try_unprotect

        def loop() -> None:
            for q in bad:
                f(q)

        return len(bad), loop

    def raw_protect() -> tuple[int, Callable[[], object]]:
        f = raw_session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND).protect

        def loop() -> None:
            for q in plain:
                f(q)

        return len(plain), loop

    def sender() -> tuple[int, Callable[[], object]]:
        f = new_sender(KeyStreamLedger(), SEND, suite, key, salt).protect
        for q in plain[:warm]:
            f(q)
        todo = plain[warm:]

        def loop() -> None:
            for q in todo:
                f(q)

        return len(todo), loop

    reports = [
        rtcp.compound(rtcp.sender_report(0x1234, s << 32, 160 * s, s, 160 * s), cname)
        for s in range(n)
    ]  # a 28-octet SR and a 20-octet SDES CNAME: what a participant sends
    srtcp = [tx.protect_rtcp(r) for r in reports]

    def raw_rtcp(protect: bool) -> tuple[int, Callable[[], object]]:
        if protect:
            f = raw_session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND).protect_rtcp
            todo = reports
        else:
            f = raw_session(pylibsrtp.Policy.SSRC_ANY_INBOUND).unprotect_rtcp
            todo = srtcp

        def loop() -> None:
            for q in todo:
                f(q)

        return len(todo), loop

    def suite_rtcp(protect: bool) -> tuple[int, Callable[[], object]]:
        if protect:
            f = new_sender(KeyStreamLedger(), SEND, suite, key, salt).protect_rtcp
            todo = reports
        else:
            f = new_receiver(KeyStreamLedger(), RECV, suite, key, salt).try_unprotect_rtcp
            todo = srtcp

        def loop() -> None:
            for q in todo:
                f(q)

        return len(todo), loop

    print(f"{suite} (172-octet RTP packets, 48-octet RTCP compounds, best of {reps})")
    rows = [  # an anchor row (None) sets the rate the rows after it are compared with
        ("unprotect  pylibsrtp raw", raw_unprotect, None),
        ("unprotect  SrtpReceiver steady", lambda: receiver(False), ""),
        ("unprotect  SrtpReceiver first 2k", lambda: receiver(True), "  (ledger sampling)"),
        ("auth fail  pylibsrtp raise+catch", raw_fail, None),
        ("auth fail  SrtpReceiver.try_unprotect", try_fail, ""),
        ("protect    pylibsrtp raw", raw_protect, None),
        ("protect    SrtpSender steady", sender, ""),
        ("SRTCP unprotect  pylibsrtp raw", lambda: raw_rtcp(False), None),
        ("SRTCP unprotect  try_unprotect_rtcp", lambda: suite_rtcp(False), ""),
        ("SRTCP protect    pylibsrtp raw", lambda: raw_rtcp(True), None),
        ("SRTCP protect    SrtpSender", lambda: suite_rtcp(True), ""),
    ]
    anchor = 0.0
    for label, make, note in rows:
        got = best(reps, make)
        if note is None:
            anchor = got
            print(f"  {label:<38}{got:>12,.0f} pkt/s   anchor")
        else:
            print(f"  {label:<38}{got:>12,.0f} pkt/s {anchor / got:5.2f} x raw{note}")


def leg_receive(n: int, reps: int) -> None:
    """The suite's verification path per datagram (MediaLeg's protocol callback, no socket)
    against raw pylibsrtp unprotect of the same packets, best of `reps` each."""
    suite = "AES_CM_128_HMAC_SHA1_80"
    key, salt = new_master_key(suite)
    tx = new_sender(KeyStreamLedger(), SEND, suite, key, salt)
    packets = [tx.protect(build_rtp(0, s, 160 * s, 0x1234, b"\xd5" * 160)) for s in range(n)]
    todo = packets[2200:]  # after the ledger's sample, as in "steady" above

    async def leg_rate() -> float:
        leg = MediaLeg()
        addr = ("127.0.0.1", 4000)
        leg.set_remote(addr)  # as a participant's leg: only the target's packets are judged
        leg.set_receiver(new_receiver(KeyStreamLedger(), RECV, suite, key, salt))
        cb = leg.datagram_received
        for q in packets[:2200]:
            cb(q, addr)
        t = time.perf_counter()
        for q in todo:
            cb(q, addr)
        elapsed = time.perf_counter() - t
        assert leg.authenticated == n, "the path did not authenticate every packet"
        return len(todo) / elapsed

    def inbound() -> pylibsrtp.Session:
        policy = pylibsrtp.Policy(
            key=key + salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=PROFILES[suite].libsrtp_profile,
        )
        return pylibsrtp.Session(policy)

    def raw_rate() -> float:
        f = inbound().unprotect
        for q in packets[:2200]:
            f(q)
        return rate(len(todo), lambda: [f(q) for q in todo])

    cname = rtcp.sdes_cname(0x1234, "bench@confsec")
    srtcp = [
        tx.protect_rtcp(rtcp.compound(rtcp.sender_report(0x1234, s << 32, s, s, s), cname))
        for s in range(n)
    ]

    async def leg_rtcp_rate() -> float:
        leg = MediaLeg()
        addr = ("127.0.0.1", 4001)
        leg.set_remote(addr)
        leg.set_receiver(new_receiver(KeyStreamLedger(), RECV, suite, key, salt))
        cb = leg.datagram_received
        t = time.perf_counter()
        for q in srtcp:
            cb(q, addr)
        elapsed = time.perf_counter() - t
        assert leg.rtcp_stats().accepted == n, "the path did not accept every SRTCP packet"
        return n / elapsed

    def raw_rtcp_rate() -> float:
        f = inbound().unprotect_rtcp
        return rate(n, lambda: [f(q) for q in srtcp])

    raw = max(raw_rate() for _ in range(reps))
    leg = max(asyncio.run(leg_rate()) for _ in range(reps))
    raw_c = max(raw_rtcp_rate() for _ in range(reps))
    leg_c = max(asyncio.run(leg_rtcp_rate()) for _ in range(reps))
    print(f"Verification path, {suite}, same {len(todo):,} packets, best of {reps}")
    print(f"  pylibsrtp unprotect (raw)             {raw:>12,.0f} pkt/s   anchor")
    print(f"  MediaLeg.datagram_received            {leg:>12,.0f} pkt/s {raw / leg:5.2f} x raw")
    print(f"  pylibsrtp unprotect_rtcp (raw, {n:,})  {raw_c:>11,.0f} pkt/s   anchor")
    print(
        f"  MediaLeg.datagram_received (SRTCP)    {leg_c:>12,.0f} pkt/s {raw_c / leg_c:5.2f} x raw"
    )


def rtp_helpers(n: int) -> None:
    pkt = build_rtp(0, 1, 160, 0x1234, b"\xd5" * 160)

    def peek() -> None:
        for _ in range(n):
            peek_ssrc_seq(pkt)

    def bounds() -> None:
        for _ in range(n):
            rtp_payload_bounds(pkt)

    def build() -> None:
        for s in range(n):
            build_rtp(0, s, s, 0x1234, b"")

    def parse() -> None:
        for _ in range(n // 10):
            RtpPacket.parse(pkt)

    print("RTP")
    print(f"  build_rtp                             {rate(n, build):>12,.0f} pkt/s")
    print(f"  peek_ssrc_seq                         {rate(n, peek):>12,.0f} pkt/s")
    print(f"  rtp_payload_bounds                    {rate(n, bounds):>12,.0f} pkt/s")
    print(f"  RtpPacket.parse (full dataclass)      {rate(n // 10, parse):>12,.0f} pkt/s")


def tones() -> None:
    plan = [tone_for(k) for k in range(50)]
    mix = sum(ToneGenerator(f, amplitude=600).pcm_seconds(1.0).astype(np.int32) for f in plan[1:])
    pcm = pcmu_decode(pcmu_encode(np.asarray(mix, dtype=np.int16)))

    def timed(fn: Callable[[], object], reps: int) -> float:
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t) / reps * 1000

    # First call builds the phasor matrix; later calls with the same shape reuse it.
    first = timed(lambda: detect_tones(pcm, plan), 1)
    cached = timed(lambda: detect_tones(pcm, plan), 50)
    few = timed(lambda: detect_tones(pcm[:4000], [440.0, 660.0, 880.0]), 50)
    gen = ToneGenerator(440)
    frame_gen = timed(lambda: next(gen), 2000)
    frame = next(gen)
    frame_dec = timed(lambda: pcmu_decode(frame), 2000)
    print("Tones")
    print(f"  detect_tones 1 s x 50 candidates, first  {first:8.2f} ms")
    print(f"  detect_tones 1 s x 50 candidates, cached {cached:8.2f} ms")
    print(f"  detect_tones 0.5 s x 3 candidates        {few:8.2f} ms")
    print(f"  ToneGenerator frame (160 PCMU octets)     {frame_gen * 1000:8.1f} us")
    print(f"  pcmu_decode frame                        {frame_dec * 1000:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    n = max(args.packets, 10_000)
    for suite in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"):
        srtp(suite, n, args.reps)
    leg_receive(n, args.reps)
    rtp_helpers(n)
    tones()


if __name__ == "__main__":
    main()
