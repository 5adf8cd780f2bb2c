"""Throughput of `confsec analyze`: a synthetic capture of N SRTP packets, with and without keys.

Usage: python benchmarks/analyze_pcap.py [N]   (default one million packets)
"""

from __future__ import annotations

import secrets
import struct
import sys
import tempfile
import time
from pathlib import Path

from confsec.analyze.checks import SrtpKey
from confsec.analyze.command import analyze
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.rtp import build_rtp
from confsec.media.srtp import new_sender


def write_capture(path: Path, n: int, key: bytes, salt: bytes, streams: int = 8) -> None:
    """Ethernet/IPv4/UDP frames carrying SRTP, 8 streams interleaved."""
    ledger = KeyStreamLedger()
    suite = "AES_CM_128_HMAC_SHA1_80"
    senders = [
        new_sender(ledger, StreamId("b", str(i), "audio", "send"), suite, key, salt)
        for i in range(streams)
    ]
    payload = secrets.token_bytes(160)
    rec = struct.Struct("<IIII")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            s = i % streams
            srtp = senders[s].protect(build_rtp(0, (i // streams) & 0xFFFF, i, 0x1000 + s, payload))
            udp = struct.pack("!HHHH", 40000 + s, 50000 + s, 8 + len(srtp), 0) + srtp
            ip = (
                struct.pack(
                    "!BBHHHBBH4s4s",
                    0x45,
                    0,
                    20 + len(udp),
                    0,
                    0x4000,
                    64,
                    17,
                    0,
                    b"\x7f\0\0\1",
                    b"\x7f\0\0\1",
                )
                + udp
            )
            frame = b"\0" * 12 + b"\x08\x00" + ip
            f.write(rec.pack(i // 50, (i % 50) * 20000, len(frame), len(frame)) + frame)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    key, salt = secrets.token_bytes(16), secrets.token_bytes(14)
    with tempfile.TemporaryDirectory() as tmp:
        cap = Path(tmp) / "bench.pcap"
        t0 = time.perf_counter()
        write_capture(cap, n, key, salt)
        print(
            f"wrote {n} packets ({cap.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        for label, keys in (
            ("no keys", []),
            ("with keys", [SrtpKey("AES_CM_128_HMAC_SHA1_80", key, salt)]),
        ):
            a, seconds = analyze(cap, keys, [])
            print(
                f"analyze {label:<10}: {a.frames} frames in {seconds:.2f} s "
                f"({a.frames / seconds:,.0f} frames/s), findings: {len(a.findings)}"
            )


if __name__ == "__main__":
    main()
