"""O1 on synthetic captures: TCP is reassembled before the bytes are judged as TLS or not.

Judged segment by segment, the second segment of a TLS record split across segments (normal on
any real network) would read as "neither ESP nor TLS" and fail O1. So the bytes of each
direction are put back in order (retransmissions and reordering tolerated, memory bounded) and
walked record by record.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

from confsec.analyze.tcp import TcpStream, TlsRecords
from tests.analyze.synthetic import ACK, FIN, PSH, SYN, Capture, run_analyze

CLIENT, SERVER = "10.0.0.1", "10.0.0.2"
PORT = 7443  # the AS -> MRFP key interface of the synthetic deployment
O1 = "The AS/MRFC/MRFP interfaces carry no key in the clear"


def record(content_type: int, body: bytes) -> bytes:
    return bytes([content_type, 3, 3]) + len(body).to_bytes(2, "big") + body


def noise(n: int, seed: int) -> bytes:
    """Bytes that stand for ciphertext, fixed per seed so the test is the same every run."""
    return random.Random(seed).randbytes(n)


def client_hello() -> bytes:
    # handshake type 1, then a body long enough to be cut twice (517 bytes, as browsers send)
    return record(22, b"\x01\x00\x01\xfc\x03\x03" + noise(511, 1))


def test_a_tls_record_split_across_segments_is_not_failed(tmp_path: Path) -> None:
    cap = Capture()
    c, s = 1000, 5000  # initial sequence numbers
    cap.tcp(CLIENT, 50123, SERVER, PORT, c, flags=SYN)
    cap.tcp(SERVER, PORT, CLIENT, 50123, s, flags=SYN | ACK)
    c, s = c + 1, s + 1
    hello = client_hello()
    for cut in (hello[:200], hello[200:400], hello[400:]):  # one record, three segments
        cap.tcp(CLIENT, 50123, SERVER, PORT, c, cut)
        c += len(cut)
    flight = record(22, noise(90, 2)) + record(20, b"\x01") + record(23, noise(1200, 3))
    first, second = flight[:700], flight[700:]
    cap.tcp(SERVER, PORT, CLIENT, 50123, s + len(first), second)  # overtakes the first half
    cap.tcp(SERVER, PORT, CLIENT, 50123, s, first)
    cap.tcp(SERVER, PORT, CLIENT, 50123, s, first)  # and is retransmitted
    s += len(flight)
    data = record(23, noise(3000, 4)) + record(23, noise(40, 5))
    for i in range(0, len(data), 1448):  # MSS-sized segments, records cut anywhere
        cap.tcp(CLIENT, 50123, SERVER, PORT, c + i, data[i : i + 1448])
    c += len(data)
    cap.tcp(CLIENT, 50123, SERVER, PORT, c, flags=FIN | ACK)
    res = run_analyze(tmp_path, cap.write(tmp_path / "o1.pcap"), o1_ports=[PORT])
    o1 = res.scenario(O1)
    assert res.findings["findings"] == [], res.findings
    assert o1["verdict"] == "pass", o1
    counts = o1["observed"]["counts"]
    assert counts["TLS records"] == 6, counts
    assert counts["TCP streams reassembled"] == 2, counts
    assert counts["TCP segments retransmitted"] == 1, counts
    assert res.requirement("O1") == "pass"


def test_a_capture_that_begins_inside_a_tls_record_is_not_failed(tmp_path: Path) -> None:
    """A long-lived interface is captured from the middle of a connection: no SYN, and the
    first bytes seen are the tail of a record. The record boundary is found, not guessed."""
    cap = Capture()
    seq = 777_000
    for payload in (noise(700, 6), record(23, noise(300, 7)), record(23, noise(200, 8))):
        cap.tcp(CLIENT, 50123, SERVER, PORT, seq, payload)
        seq += len(payload)
    res = run_analyze(tmp_path, cap.write(tmp_path / "o1.pcap"), o1_ports=[PORT])
    o1 = res.scenario(O1)
    assert res.findings["findings"] == [], res.findings
    assert o1["verdict"] == "pass", o1
    assert o1["observed"]["counts"]["TLS records"] == 2


def test_plain_tcp_split_across_segments_still_fails(tmp_path: Path) -> None:
    """The key channel in the clear: JSON lines with a key, cut across segments, with and
    without the connection's SYN in the capture. Reassembly must not hide it."""
    line = json.dumps({"op": "install", "key": base64.b64encode(noise(30, 9)).decode()}) + "\n"
    stream = (line * 3).encode()
    for with_syn in (True, False):
        cap = Capture()
        seq = 42
        if with_syn:
            cap.tcp(CLIENT, 50123, SERVER, PORT, seq, flags=SYN)
            seq += 1
        for i in range(0, len(stream), 50):
            cap.tcp(CLIENT, 50123, SERVER, PORT, seq + i, stream[i : i + 50])
        res = run_analyze(tmp_path / str(with_syn), cap.write(tmp_path / "o1.pcap"), [], [PORT])
        assert res.scenario(O1)["verdict"] == "fail", with_syn
        assert res.kinds() == {"unprotected-interface", "key-material-in-clear"}, res.findings


def test_a_hole_in_the_capture_is_named_not_failed(tmp_path: Path) -> None:
    """A segment the capture missed: what comes after the hole cannot be put in order, so O1
    is inconclusive and says where, instead of reading a record's middle as plain TCP."""
    cap = Capture()
    seq = 1000
    cap.tcp(CLIENT, 50123, SERVER, PORT, seq, flags=SYN)
    seq += 1
    first = record(23, noise(100, 10))
    cap.tcp(CLIENT, 50123, SERVER, PORT, seq, first)
    seq += len(first)
    lost = record(23, noise(900, 11))
    cap.tcp(CLIENT, 50123, SERVER, PORT, seq + 500, lost[500:])  # its first 500 bytes are lost
    res = run_analyze(tmp_path, cap.write(tmp_path / "o1.pcap"), o1_ports=[PORT])
    o1 = res.scenario(O1)
    assert res.findings["findings"] == [], res.findings
    assert o1["verdict"] == "inconclusive", o1
    assert f"{CLIENT}:50123 -> {SERVER}:{PORT}" in o1["reason"], o1
    assert o1["observed"]["counts"]["bytes unjudged"] == len(lost)  # the hole and what follows


def test_the_stream_delivers_each_byte_once_and_in_order() -> None:
    """Overlapping retransmissions, reordering and sequence-number wrap, unit by unit."""
    t = TcpStream()
    isn = 0xFFFFFF00  # the stream wraps past 2**32
    assert t.feed(isn, SYN, b"", 1) == []
    data = bytes(range(256)) * 4
    start = (isn + 1) & 0xFFFFFFFF
    segs = [(0, 300), (600, 1024), (250, 650), (0, 100), (300, 600)]
    out = b""
    for n, (a, b) in enumerate(segs, 2):
        for chunk in t.feed((start + a) & 0xFFFFFFFF, ACK | PSH, data[a:b], n):
            assert chunk.gap == 0
            out += chunk.data
    assert out == data
    assert t.pending_bytes == 0


def test_out_of_order_data_is_bounded() -> None:
    """A hole that never fills does not make the analyser hold the rest of the stream."""
    t = TcpStream()
    t.feed(0, SYN, b"", 1)
    delivered = []
    for i in range(1, 2000):
        delivered += t.feed(1 + 1000 * i, ACK, bytes(1000), i + 1)  # byte 1..1000 never comes
        assert t.pending_bytes <= TcpStream.MAX_PENDING_BYTES
    assert delivered and delivered[0].gap == 1000  # skipped past the hole, and said so


def test_record_framing_keeps_no_record_bodies() -> None:
    """The TLS walk keeps a partial header at most: a 16 KiB record costs no memory."""
    r = TlsRecords(synced=True)
    big = record(23, noise(16384, 12))
    for i in range(0, len(big), 1000):
        assert r.feed(big[i : i + 1000]) == b""
    assert r.records == 1 and r.buffered <= 5
