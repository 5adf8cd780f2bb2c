"""O1 on the wire: the reference's focus -> mixer key interface, captured and analysed.

The focus hands every leg's SRTP keys to the mixer over the key channel. Over TLS the capture of
that port shows only TLS records (O1 passes, with the note that NDS/IP asks for ESP); with the
`key-channel-in-clear` defect the keys are readable in the capture and O1 fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread
from tests.analyze.recording import analyze, need_dumpcap, recording


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread("o1-test")
    yield lt
    lt.close()


def capture_key_channel(
    tmp_path: Path, loop: LoopThread, defects: frozenset[str]
) -> tuple[Path, int]:
    need_dumpcap()
    ref = EmbeddedReference.start(tmp_path / "ref", defects=defects)
    conf = ConferenceRun(loop, ref.target, keylog=tmp_path / "keylog.txt")
    port = ref.deployment.key_channel.port
    try:
        with recording(tmp_path / "o1.pcap", f"tcp port {port}") as cap:
            assert conf.create("alice", OfferSpec()).status == 200
            assert conf.join("bob", OfferSpec()).status == 200
            conf.exchange_media(0.4)  # the channel carried working keys
    finally:
        conf.close()
        ref.stop()
    return cap, port


def analyze_o1(tmp_path: Path, cap: Path, port: int) -> tuple[int, str, list[str], str]:
    rc, by_id, findings, out = analyze(tmp_path, cap, "--o1-port", str(port))
    return rc, by_id["O1"], sorted({f["kind"] for f in findings["findings"]}), out


def test_the_key_channel_runs_over_tls(tmp_path: Path, loop: LoopThread) -> None:
    cap, port = capture_key_channel(tmp_path, loop, frozenset())
    rc, verdict, kinds, out = analyze_o1(tmp_path, cap, port)
    assert (verdict, kinds) == ("pass", []), out
    assert rc == 0, out


def test_the_key_channel_in_clear_is_caught(tmp_path: Path, loop: LoopThread) -> None:
    cap, port = capture_key_channel(tmp_path, loop, frozenset({"key-channel-in-clear"}))
    rc, verdict, kinds, out = analyze_o1(tmp_path, cap, port)
    assert verdict == "fail", out
    assert kinds == ["key-material-in-clear", "unprotected-interface"], out
    assert rc == 1
