"""Throughput of `confsec analyze` on a synthetic DTLS-SRTP capture, with and without the key log.

Usage: python benchmarks/analyze_dtls.py [N] [--associations K] [--reps R]
(from a checkout; needs pyOpenSSL, as the tests do)   (default 300,000 packets, 4 associations)

The capture: SIP over UDP with an offer and an answer per call (UDP/TLS/RTP/SAVP, a=fingerprint
of each side's certificate), K real DTLS 1.2 handshakes run by pyOpenSSL in memory
(tests/codec/dtls_pair.py), then N SRTP packets (AES_CM_128_HMAC_SHA1_80, both directions of
every association interleaved) under the keys each handshake exported, in Ethernet/IPv4/UDP
frames. The key log is what the handshakes' keylog callback wrote.

`confsec analyze` reads it three ways, each timed as analyze()'s own time in this process (the
best of --reps runs; the machine may be shared):

- with the key log: every association's keys derived and bound to its flow directions, every
  packet authenticated under its own direction's key, the ledger kept (the DTLS-SRTP case);
- without it: the handshakes judged, the media named as unjudged (framing only);
- the same keys given as SDES keys (--keys): the SDES path on the same packets, for comparison.

The packets per second printed are N (SRTP) over the time; the few handshake and SIP frames are
counted in the time but not in N.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confsec.analyze.command import analyze
from confsec.analyze.dtls import parse_keylog
from confsec.analyze.findings import SrtpKey
from confsec.media.rtp import build_rtp
from tests.analyze.synthetic import sdp, sip_invite, sip_ok, srtp_session
from tests.codec.dtls_pair import C2S, Handshake, handshake

SUITE = "AES_CM_128_HMAC_SHA1_80"
PROTO = "UDP/TLS/RTP/SAVP"
_REC = struct.Struct("<IIII")


def _frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0x4000,
        64,
        17,
        0,
        bytes(int(x) for x in src[0].split(".")),
        bytes(int(x) for x in dst[0].split(".")),
    )
    return b"\0" * 12 + b"\x08\x00" + ip + udp


def _fingerprint(der: bytes) -> str:
    return "sha-256 " + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def write_capture(path: Path, n: int, calls: list[Handshake]) -> list[SrtpKey]:
    """The capture described in the module docstring; returns the exported keys (for --keys)."""
    keys: list[SrtpKey] = []
    senders = []
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        frames = 0

        def put(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
            nonlocal frames
            frame = _frame(src, dst, payload)
            f.write(_REC.pack(frames // 50, (frames % 50) * 20000, len(frame), len(frame)))
            f.write(frame)
            frames += 1

        for i, hs in enumerate(calls):
            client, server = (f"10.0.0.{i + 1}", 50000 + 2 * i), (f"10.1.0.{i + 1}", 40000 + 2 * i)
            offer = sdp(
                *client, PROTO, "setup:actpass", f"fingerprint:{_fingerprint(hs.client_cert)}"
            )
            answer = sdp(
                *server, PROTO, "setup:passive", f"fingerprint:{_fingerprint(hs.server_cert)}"
            )
            put((client[0], 5060), (server[0], 5060), sip_invite(offer))
            put((server[0], 5060), (client[0], 5060), sip_ok(answer))
            for way, data in hs.datagrams:
                put(*((client, server) if way == C2S else (server, client)), data)
            out = hs.client.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
            ck, sk, cs, ss = out[:16], out[16:32], out[32:46], out[46:60]
            keys += [SrtpKey(SUITE, ck, cs), SrtpKey(SUITE, sk, ss)]
            senders.append((client, server, srtp_session(ck, cs), 0x1000 + 2 * i))
            senders.append((server, client, srtp_session(sk, ss), 0x1001 + 2 * i))
        payload = bytes(range(160))
        for j in range(n):
            src, dst, session, ssrc = senders[j % len(senders)]
            seq = (j // len(senders) + 1) & 0xFFFF
            put(src, dst, session.protect(build_rtp(0, seq, seq * 160, ssrc, payload)))
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("packets", nargs="?", type=int, default=300_000, help="default 300000")
    parser.add_argument("--associations", type=int, default=4, help="DTLS handshakes (4)")
    parser.add_argument("--reps", type=int, default=2, help="best of R runs (default 2)")
    args = parser.parse_args()
    n, reps = args.packets, max(1, args.reps)
    calls = [handshake() for _ in range(max(1, args.associations))]
    keylog = parse_keylog("\n".join(line for hs in calls for line in hs.keylog))
    with tempfile.TemporaryDirectory() as tmp:
        cap = Path(tmp) / "dtls.pcap"
        t0 = time.perf_counter()
        keys = write_capture(cap, n, calls)
        print(
            f"wrote {n} SRTP packets over {len(calls)} DTLS associations "
            f"({cap.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s"
        )
        rows = []
        cases = (
            ("DTLS-SRTP, with the key log", [], keylog),
            ("DTLS-SRTP, no key log", [], None),
            ("same keys given as --keys", keys, None),
        )
        for label, given, log in cases:
            runs = [analyze(cap, list(given), [], keylog=log) for _ in range(reps)]
            a, seconds = runs[0][0], min(t for _, t in runs)
            c = a.checks
            note = (
                f"{a.frames} frames, {c.dtls_keyed}/{c.dtls_associations} associations keyed, "
                f"{c.packets_judged} packets judged, findings: "
                + (", ".join(sorted({f.kind for f in a.findings.values()})) or "none")
            )
            rows.append((label, seconds, note))
    print()
    print(f"  {'':<30}{'seconds':>9}{'packets/s':>12}")
    for label, seconds, note in rows:
        print(f"  {label:<30}{seconds:>9.2f}{n / seconds:>12,.0f}  {note}")


if __name__ == "__main__":
    main()
