"""Throughput of `confsec analyze` on a synthetic SRTP capture, against `tshark -r` on it.

Usage: python benchmarks/analyze_pcap.py [N] [--reps R] [--no-tshark]   (default 300,000 packets)
(from a checkout; no install needed)

The capture: N SRTP packets (AES_CM_128_HMAC_SHA1_80, 8 streams interleaved) in Ethernet/IPv4/
UDP frames; the 8 streams share one master key under distinct SSRCs, so with the key analyze
reports one R4 `keystream-reuse` finding, as it should. `confsec analyze` reads it twice,
without keys (R3 framing checks, O1 ports) and with the key (every RTP packet authenticated,
ledger bookkeeping); the time is analyze()'s own, in this process. The anchor, in the same run
on the same file: `tshark -r FILE` (one summary line per frame, to /dev/null) and the same with
the RTP-over-UDP heuristic on, so that tshark dissects the frames as RTP as analyze does
(tshark cannot check SRTP tags). tshark's time is the whole process, so its start-up, measured
on an empty capture, is printed too. Every time is the best of --reps runs (the machine may be
shared). The ratio is tshark time over analyze time: above 1, analyze is the faster.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confsec.analyze.command import analyze
from confsec.analyze.findings import SrtpKey
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


def tshark(tool: str, cap: Path, *extra: str) -> float:
    """Seconds `tshark -r cap` takes, summary lines to /dev/null (the plain command)."""
    started = time.perf_counter()
    subprocess.run(
        [tool, "-n", "-r", str(cap), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("packets", nargs="?", type=int, default=300_000, help="default 300000")
    parser.add_argument("--reps", type=int, default=2, help="best of R runs (default 2)")
    parser.add_argument("--no-tshark", action="store_true", help="skip the tshark anchor")
    args = parser.parse_args()
    n, reps = args.packets, max(1, args.reps)
    key, salt = secrets.token_bytes(16), secrets.token_bytes(14)
    with tempfile.TemporaryDirectory() as tmp:
        cap = Path(tmp) / "bench.pcap"
        t0 = time.perf_counter()
        write_capture(cap, n, key, salt)
        print(
            f"wrote {n} packets ({cap.stat().st_size / 1e6:.0f} MB) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        rows: list[tuple[str, float, str]] = []
        for label, keys in (
            ("confsec analyze, no keys", []),
            ("confsec analyze, with keys", [SrtpKey("AES_CM_128_HMAC_SHA1_80", key, salt)]),
        ):
            runs = [analyze(cap, keys, []) for _ in range(reps)]
            a, seconds = runs[0][0], min(t for _, t in runs)
            kinds = sorted({f.check for f in a.findings.values()}) or ["none"]
            rows.append((label, seconds, f"{a.frames} frames, findings: {', '.join(kinds)}"))
        tool = None if args.no_tshark else shutil.which("tshark")
        if tool is not None:
            empty = Path(tmp) / "empty.pcap"
            write_capture(empty, 0, key, salt)
            startup = min(tshark(tool, empty) for _ in range(reps))
            plain = min(tshark(tool, cap) for _ in range(reps))
            rows.append(("tshark -r", plain, f"start-up {startup:.2f} s included"))
            heuristic = min(tshark(tool, cap, "--enable-heuristic", "rtp_udp") for _ in range(reps))
            rows.append(("tshark -r, RTP heuristic on", heuristic, "frames dissected as RTP"))
    print()
    print(f"  {'':<30}{'seconds':>9}{'frames/s':>12}")
    for label, seconds, note in rows:
        print(f"  {label:<30}{seconds:>9.2f}{n / seconds:>12,.0f}  {note}")
    if tool is None:
        why = "--no-tshark" if args.no_tshark else "tshark is not installed (apt install tshark)"
        print(f"no anchor: {why}; no ratio printed")
        return
    print()
    print("ratio tshark time / analyze time (above 1: analyze is faster)")
    for t_label, t_s, _ in rows[2:]:
        for a_label, a_s, _ in rows[:2]:
            print(f"  {t_label:<30} / {a_label[16:]:<10} {t_s / a_s:6.2f}")


if __name__ == "__main__":
    main()
