"""The report pcap parses as IPv4/TCP/UDP; redaction blanks keys, keeps the ladder readable."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from confsec.evidence import scenario_slug
from confsec.evidence.pcap import Frame, PcapWriter, read_pcap
from confsec.evidence.redact import redact

INVITE = (
    b'INVITE sips:conf@x SIP/2.0\r\nAuthorization: Digest username="alice", nonce="n1", '
    b'cnonce="c0ffee", response="deadbeef"\r\nContent-Length: 70\r\n\r\n'
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n"
)


def test_redaction_blanks_sdes_key_digest_response_and_known_secrets() -> None:
    out = redact(INVITE + b"password=hunter2-long", ["hunter2-long"])
    assert b"WVNfX19zZW1jdGwg" not in out and b"inline:[redacted]|2^31" in out
    assert b"deadbeef" not in out and b"c0ffee" not in out
    assert b"hunter2-long" not in out
    assert b'username="alice"' in out and b'nonce="n1"' in out


def test_pcap_records_round_trip() -> None:
    w = PcapWriter()
    w.add(Frame(2.0, "udp", ("127.0.0.1", 4000), ("127.0.0.1", 5000), b"\x80" * 20))
    w.add(Frame(1.0, "tcp", ("127.0.0.1", 40000), ("127.0.0.1", 5061), INVITE))
    records = read_pcap(w.to_bytes())
    assert [t for t, _ in records] == [1.0, 2.0]  # written in time order
    tcp = records[0][1]
    assert tcp[9] == 6 and struct.unpack("!HH", tcp[20:24]) == (40000, 5061)
    assert tcp.endswith(INVITE)
    udp = records[1][1]
    assert udp[9] == 17 and struct.unpack("!H", udp[24:26])[0] == 28


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_dissects_the_sip_in_the_slice(tmp_path: Path) -> None:
    w = PcapWriter()
    w.add(Frame(1.0, "tcp", ("127.0.0.1", 40000), ("127.0.0.1", 5061), INVITE))
    path = tmp_path / "s.pcap"
    w.write(path)
    out = subprocess.run(
        ["tshark", "-r", str(path), "-d", "tcp.port==5061,sip", "-T", "fields", "-e", "sip.Method"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "INVITE" in out


def test_slug_is_stable_and_distinguishes_examples() -> None:
    a = scenario_slug("features/test_requirements.py::test_x[AES_CM]")
    b = scenario_slug("features/test_requirements.py::test_x[GCM]")
    assert a != b and a == scenario_slug("features/test_requirements.py::test_x[AES_CM]")
    assert "/" not in a and len(a) < 80
