"""SDES keys from SIP over TLS, with the TLS key log: tshark decrypts, confsec reads the SDP.

A vendor's capture of a secure deployment carries its SDES keys inside TLS; with the key log of
the signalling connections (NSS format, what `confsec run` writes to evidence/) the keys become
available to the media checks without the vendor having to export them. Decrypting TLS is
tshark's job (Wireshark's TLS dissector); confsec only finds the TLS server ports, asks tshark
to decode them as SIP, and reads the `a=crypto` lines it prints.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from confsec.analyze.checks import _CRYPTO, SrtpKey
from confsec.analyze.pcap import PROTO_TCP, packets
from confsec.errors import ConfigError


def tls_server_ports(capture: Path) -> set[int]:
    """Ports that receive a TLS ClientHello (record 0x16, handshake type 1)."""
    ports = set()
    for p in packets(capture):
        d = p.payload
        if p.proto == PROTO_TCP and len(d) > 5 and d[0] == 0x16 and d[1] == 3 and d[5] == 1:
            ports.add(p.dport)
    return ports


def keys_from_tls(capture: Path, keylog: Path) -> list[SrtpKey]:
    if not keylog.is_file():
        raise ConfigError(f"{keylog}: no such key log file")
    tshark = shutil.which("tshark")
    if tshark is None:
        raise ConfigError("--keylog needs tshark (apt-get install tshark) to decrypt TLS")
    ports = tls_server_ports(capture)
    if not ports:
        return []
    argv = [tshark, "-n", "-r", str(capture), "-o", f"tls.keylog_file:{keylog}"]
    for port in sorted(ports):
        argv += ["-d", f"tls.port=={port},sip"]
    argv += ["-Y", "sdp", "-T", "fields", "-e", "sdp.media_attr", "-E", "occurrence=a"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ConfigError(f"tshark could not read {capture}: {proc.stderr.strip()[:300]}")
    from confsec.analyze.checks import Analyzer

    collector = Analyzer()
    for line in proc.stdout.splitlines():
        for attr in line.split(","):
            for suite, inline in _CRYPTO.findall(b"a=" + attr.encode()):
                collector._learn_key(suite.decode(), inline, "TLS (key log)")
    return collector.keys
