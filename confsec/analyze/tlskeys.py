"""SDES keys, negotiated media and DTLS fingerprints from SIP over TLS with the key log: tshark
decrypts.

A vendor's capture of a secure deployment carries its SDES keys inside TLS; with the key log of
the signalling connections (NSS format, what `confsec run` writes to evidence/) the keys become
available to the media checks without the vendor having to export them. The same SDP says which
address and port each stream was negotiated for and whether as RTP/SAVP, which lets the media
check fail a plain stream where SRTP was agreed instead of calling it "unkeyed". Decrypting TLS
is tshark's job (Wireshark's TLS dissector); confsec only finds the TLS server ports, asks tshark
to decode them as SIP, and reads the SDP fields it prints (`parse_tshark_sdp`).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from confsec.analyze.findings import SrtpKey
from confsec.analyze.pcap import PROTO_TCP, packets
from confsec.analyze.signalling import CRYPTO, Fingerprint, fingerprint, sdes_key
from confsec.errors import ConfigError

FIELDS = (
    "ip.src",
    "ipv6.src",
    "sdp.connection_info.address",
    "sdp.media.port",
    "sdp.media.proto",
    "sdp.media_attr",
    "sdp.session_attr",
)
"""What tshark prints per SDP-carrying frame, in this order (`-T fields`, all occurrences)."""


@dataclass
class TlsSignalling:
    """What the decrypted signalling gave: SDES keys, m= lines, and how many frames held SDP."""

    keys: list[SrtpKey] = field(default_factory=list)
    media: list[tuple[str, int, str]] = field(default_factory=list)
    """(address, port, protocol) of every m= line: where its SDP's author receives media."""
    sdp_frames: int = 0
    """Frames whose decrypted SIP carried SDP (tshark prints one line per frame)."""
    fingerprints: list[tuple[str, int, tuple[Fingerprint, ...]]] = field(default_factory=list)
    """(address, port, a=fingerprint values) of every m= line that has any (DTLS-SRTP)."""


def tls_server_ports(capture: Path) -> set[int]:
    """Ports that receive a TLS ClientHello (record 0x16, handshake type 1)."""
    ports = set()
    for p in packets(capture):
        d = p.payload
        if p.proto == PROTO_TCP and len(d) > 5 and d[0] == 0x16 and d[1] == 3 and d[5] == 1:
            ports.add(p.dport)
    return ports


def signalling_from_tls(capture: Path, keylog: Path) -> TlsSignalling:
    """What SIP over TLS in the capture carried, decrypted by tshark with the key log. A capture
    without TLS needs no tshark: the same key log may serve DTLS-SRTP alone."""
    if not keylog.is_file():
        raise ConfigError(f"{keylog}: no such key log file")
    ports = tls_server_ports(capture)
    if not ports:
        return TlsSignalling()
    tshark = shutil.which("tshark")
    if tshark is None:
        raise ConfigError("--keylog needs tshark (apt-get install tshark) to decrypt TLS")
    argv = [tshark, "-n", "-r", str(capture), "-o", f"tls.keylog_file:{keylog}"]
    for port in sorted(ports):
        argv += ["-d", f"tls.port=={port},sip"]
    argv += ["-Y", "sdp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in FIELDS:
        argv += ["-e", name]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ConfigError(f"tshark could not read {capture}: {proc.stderr.strip()[:300]}")
    return parse_tshark_sdp(proc.stdout)


def keys_from_tls(capture: Path, keylog: Path) -> list[SrtpKey]:
    """The SDES keys alone (what callers before the negotiated media used)."""
    return signalling_from_tls(capture, keylog).keys


def parse_tshark_sdp(output: str) -> TlsSignalling:
    """Read tshark's `FIELDS` lines: one SDP-carrying frame per line, tab-separated, each field's
    occurrences joined by commas.

    `-T fields` does not say which c= belongs to which m=, so the addresses are paired by
    count: one c= (session level) serves every m=; one more c= than m= lines is a session-level
    one followed by one per m=; as many as m= lines is one per m=. Otherwise the first c= is
    used, and without any the frame's source address (RFC 8866 5.7 puts c= at either level).
    For the same reason the frame's media-level a=fingerprint values (else its session-level
    ones) are given to every m= line of the frame: an endpoint presents one certificate for all
    its media in practice, and holding it against each of them is what can be done.
    """
    out = TlsSignalling()
    seen: set[tuple[bytes, bytes]] = set()
    for line in output.splitlines():
        cols = (line.split("\t") + [""] * len(FIELDS))[: len(FIELDS)]
        src = cols[0].split(",")[0] or cols[1].split(",")[0]
        addrs = [a for a in cols[2].split(",") if a]
        ports = [p for p in cols[3].split(",") if p]
        protos = [p for p in cols[4].split(",") if p]
        out.sdp_frames += 1
        for attr in cols[5].split(","):
            for suite, inline in CRYPTO.findall(b"a=" + attr.encode()):
                k = sdes_key(suite.decode(), inline, "TLS (key log)")
                if k is not None and (k.key, k.salt) not in seen:
                    seen.add((k.key, k.salt))
                    out.keys.append(k)
        fps = _fingerprints(cols[5]) or _fingerprints(cols[6])
        if len(addrs) == len(ports) + 1:
            addrs = addrs[1:]
        for i, (port, proto) in enumerate(zip(ports, protos, strict=False)):
            if not port.isdigit():
                continue
            addr = addrs[i] if len(addrs) == len(ports) else (addrs[0] if addrs else src)
            out.media.append((addr, int(port), proto))
            if fps:
                out.fingerprints.append((addr, int(port), fps))
    return out


def _fingerprints(attrs: str) -> tuple[Fingerprint, ...]:
    """The a=fingerprint values among tshark's comma-joined attributes (`fingerprint:...`)."""
    lines = (b"a=" + a.encode() for a in attrs.split(",") if a.startswith("fingerprint:"))
    return tuple(fp for fp in map(fingerprint, lines) if fp is not None)
