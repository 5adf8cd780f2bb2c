"""Synthetic captures for the analyser's tests: raw-IPv4 pcap files built byte by byte.

The recorded captures (`recording.py`) need dumpcap and a running reference; the cases here
(a plain stream beside a keyed one, a TLS record cut across TCP segments, a capture that begins
in the middle of a record) need exact control over every packet instead, which a recording of a
real conference cannot give, and they run anywhere in milliseconds. Frames are raw IPv4
(link type 101), the form `confsec.analyze.pcap` reads with the least guessing.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pylibsrtp

from confsec.analyze.command import analyze, judge, write_reports
from confsec.analyze.dtls import KeyLog
from confsec.analyze.findings import SrtpKey
from confsec.media.rtp import build_rtp
from confsec.media.srtp import profile_for

SUITE = "AES_CM_128_HMAC_SHA1_80"
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
LINK_RAW = 101


def _ip(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(l4),
            0,
            0x4000,
            64,
            proto,
            0,
            bytes(int(x) for x in src.split(".")),
            bytes(int(x) for x in dst.split(".")),
        )
        + l4
    )


@dataclass
class Capture:
    """Frames in the order they are added; `write()` makes a classic pcap of them."""

    frames: list[bytes] = field(default_factory=list)

    def udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes) -> int:
        """Add one UDP datagram; returns its frame number (1-based, like Wireshark)."""
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        self.frames.append(_ip(src, dst, 17, l4))
        return len(self.frames)

    def tcp(
        self,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        seq: int,
        payload: bytes = b"",
        flags: int = ACK | PSH,
    ) -> int:
        """Add one TCP segment with the given sequence number and flags."""
        l4 = (
            struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 1, 5 << 4, flags, 65535, 0, 0)
            + payload
        )
        self.frames.append(_ip(src, dst, 6, l4))
        return len(self.frames)

    def write(self, path: Path) -> Path:
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINK_RAW))
            for n, frame in enumerate(self.frames):
                f.write(struct.pack("<IIII", n // 50, (n % 50) * 20000, len(frame), len(frame)))
                f.write(frame)
        return path


def srtp_session(key: bytes, salt: bytes, suite: str = SUITE) -> pylibsrtp.Session:
    """A sending SRTP/SRTCP session (the tests need SRTCP too, which SrtpSender lacks)."""
    return pylibsrtp.Session(
        pylibsrtp.Policy(
            key=key + salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile_for(suite).libsrtp_profile,
        )
    )


def rtp(seq: int, ssrc: int, payload: bytes | None = None) -> bytes:
    return build_rtp(0, seq, seq * 160, ssrc, payload if payload is not None else bytes(160))


def rtcp_sr(ssrc: int, packet_count: int) -> bytes:
    """A minimal RTCP sender report (RFC 3550 6.4.1, no report blocks): 28 bytes."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0, 0, 0, packet_count, 160 * 20)


def sip_invite(body: bytes) -> bytes:
    """A UDP INVITE carrying `body` as its SDP."""
    return (
        b"INVITE sip:conf-factory@conference.example.test SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        b"From: <sip:alice@conference.example.test>;tag=1\r\n"
        b"To: <sip:conf-factory@conference.example.test>\r\nCall-ID: 1@confsec\r\n"
        b"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def sip_ok(body: bytes) -> bytes:
    """A UDP 200 OK to `sip_invite`, carrying `body` as its SDP answer."""
    return (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
        b"From: <sip:alice@conference.example.test>;tag=1\r\n"
        b"To: <sip:conf-factory@conference.example.test>;tag=2\r\nCall-ID: 1@confsec\r\n"
        b"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def sdp(addr: str, port: int, proto: str, *attributes: str) -> bytes:
    lines = [
        "v=0",
        f"o=alice 1 1 IN IP4 {addr}",
        "s=-",
        f"c=IN IP4 {addr}",
        "t=0 0",
        f"m=audio {port} {proto} 0",
        *(f"a={a}" for a in attributes),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class Result:
    """What `confsec analyze` wrote: verdicts.json and capture-findings.json, read back."""

    verdicts: dict[str, Any]
    findings: dict[str, Any]

    def requirement(self, req: str) -> str:
        return next(r["verdict"] for r in self.verdicts["requirements"] if r["id"] == req)

    def scenario(self, name_part: str) -> dict[str, Any]:
        """The one scenario record whose name contains `name_part`."""
        (found,) = [
            s
            for r in self.verdicts["requirements"]
            for s in r["scenarios"]
            if name_part in s["name"]
        ]
        return found

    def kinds(self) -> set[str]:
        return {f["kind"] for f in self.findings["findings"]}


def run_analyze(
    tmp_path: Path,
    capture: Path,
    keys: Sequence[SrtpKey] = (),
    o1_ports: Sequence[int] = (),
    keylog: KeyLog | None = None,
) -> Result:
    """The analyser in this process (no child, no tshark): analyse, judge, write the reports.
    `keylog` is what `--keylog` gives the DTLS-SRTP checks (None: no key log)."""
    a, seconds = analyze(capture, list(keys), list(o1_ports), keylog=keylog)
    judgements = judge(a, list(o1_ports))
    reports = tmp_path / "reports"
    write_reports(reports, capture, judgements, a, seconds)
    return Result(
        json.loads((reports / "verdicts.json").read_text()),
        json.loads((reports / "capture-findings.json").read_text()),
    )
