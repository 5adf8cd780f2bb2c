"""tshark (Debian `tshark`) as the independent reader of a loopback capture of a DTLS-SRTP call.

Nothing here uses confsec's own parsers: SIP over TLS is decrypted by tshark with the
reference's TLS key log (`reference-tls-keylog.txt`), DTLS and RTCP are found by tshark's
default UDP heuristics, and a certificate's fingerprint is the SHA-256 of the DER bytes tshark
prints (RFC 8122 section 5), compared with the a=fingerprint tshark read from the SDP.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

AGGREGATOR = "|"
"""Between the occurrences of one field (no SDP attribute or hex dump here holds it)."""

DTLS_1_2 = "0xfefd"
SRTP_AES128_CM_HMAC_SHA1_80 = "0x0001"
"""RFC 5764 section 4.1.2."""


def need_tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed; .ci/run installs tshark")
    return path


def fields(
    capture: Path, display_filter: str, names: list[str], options: tuple[str, ...] = ()
) -> list[list[list[str]]]:
    """One row per frame that `display_filter` selects: for each field, its occurrences."""
    argv = [need_tshark(), "-n", "-r", str(capture), *options, "-Y", display_filter]
    argv += ["-T", "fields", "-E", f"aggregator={AGGREGATOR}"]
    for name in names:
        argv += ["-e", name]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = []
    for line in proc.stdout.splitlines():
        cells = line.split("\t")
        rows.append([c.split(AGGREGATOR) if c else [] for c in cells])
    return rows


def sha256_fingerprint(der_hex: str) -> str:
    """The RFC 8122 form of a certificate's SHA-256 fingerprint: upper-case hex pairs with ':'."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(bytes.fromhex(der_hex)).digest())


@dataclass(frozen=True)
class SdpSeen:
    """One SIP message with SDP (one m= line), as tshark decrypted and dissected it."""

    frame: int
    tcp_stream: int
    """tshark's number for the TLS connection that carried it."""
    first_line: str
    """The request line, or the status line."""
    port: int
    proto: str
    attributes: tuple[str, ...]
    """Session-level then media-level `a=` values, as tshark prints them (`name:value`)."""

    def values(self, name: str) -> list[str]:
        prefix = f"{name}:"
        return [a[len(prefix) :] for a in self.attributes if a.startswith(prefix) or a == name]

    @property
    def fingerprints(self) -> set[str]:
        """The SHA-256 a=fingerprint values, in RFC 8122 form (the hash name in any case)."""
        out = set()
        for value in self.values("fingerprint"):
            algo, _, hexpairs = value.partition(" ")
            if algo.lower() == "sha-256":
                out.add(hexpairs.upper())
        return out


def sdp_over_tls(capture: Path, keylog: Path, sip_port: int) -> list[SdpSeen]:
    """Every SDP carried by SIP over TLS on `sip_port`, decrypted with the key log."""
    options = (
        "-o",
        f"tls.keylog_file:{keylog}",
        "-d",
        f"tcp.port=={sip_port},tls",
        "-d",
        f"tls.port=={sip_port},sip",
    )
    names = [
        "frame.number",
        "tcp.stream",
        "sip.Request-Line",
        "sip.Status-Line",
        "sdp.media",
        "sdp.session_attr",
        "sdp.media_attr",
    ]
    out = []
    for frame, stream, request, status, media, session_attrs, media_attrs in fields(
        capture, "sdp", names, options
    ):
        for m in media:  # one m= line per SDP in these calls
            _, port, proto, *_ = m.split()
            out.append(
                SdpSeen(
                    int(frame[0]),
                    int(stream[0]),
                    (request or status)[0],
                    int(port),
                    proto,
                    tuple(session_attrs + media_attrs),
                )
            )
    return out


@dataclass(frozen=True)
class Handshake:
    """What tshark saw of one DTLS handshake between two UDP ports."""

    client_port: int
    server_port: int
    server_hello_frame: int
    version: str
    """The ServerHello's version (0xfefd: DTLS 1.2)."""
    offered_profiles: tuple[str, ...]
    """The ClientHello's use_srtp protection profiles."""
    profile: str
    """The use_srtp profile the ServerHello selected."""
    cipher_suite: str
    fingerprints: dict[int, str]
    """Per sending port: the SHA-256 fingerprint of the certificate it sent."""
    last_handshake_frame: dict[int, int]
    """Per sending port: the last frame with a DTLS handshake record (its Finished)."""


def dtls_handshakes(capture: Path) -> list[Handshake]:
    names = [
        "frame.number",
        "udp.srcport",
        "udp.dstport",
        "dtls.handshake.type",
        "dtls.handshake.version",
        "dtls.use_srtp.protection_profile",
        "dtls.handshake.ciphersuite",
        "dtls.handshake.certificate",
    ]
    hellos: dict[tuple[int, int], list[str]] = {}
    found: dict[tuple[int, int], dict] = {}
    certs: dict[int, str] = {}
    last: dict[int, int] = {}
    for frame, src, dst, types, version, profiles, suites, cert in fields(
        capture, "dtls.handshake", names
    ):
        number, sport, dport = int(frame[0]), int(src[0]), int(dst[0])
        last[sport] = number
        if "1" in types:  # ClientHello
            hellos[(sport, dport)] = profiles
        if "2" in types:  # ServerHello (the first of the suites printed is its own)
            found[(dport, sport)] = {
                "server_hello_frame": number,
                "version": version[0],
                "profile": profiles[0],
                "cipher_suite": suites[0],
            }
        if cert:
            certs[sport] = sha256_fingerprint(cert[0])
    return [
        Handshake(
            client_port=client,
            server_port=server,
            offered_profiles=tuple(hellos.get((client, server), ())),
            fingerprints={p: certs[p] for p in (client, server) if p in certs},
            last_handshake_frame={p: last[p] for p in (client, server) if p in last},
            **seen,
        )
        for (client, server), seen in found.items()
    ]


def udp_payload_frames(capture: Path, src_port: int, dst_port: int) -> list[int]:
    """Frames of UDP datagrams from `src_port` to `dst_port` that are not DTLS (RTP, RTCP)."""
    rows = fields(
        capture,
        f"udp.srcport=={src_port} && udp.dstport=={dst_port} && !dtls && !icmp",
        ["frame.number"],
    )
    return [int(r[0][0]) for r in rows]
