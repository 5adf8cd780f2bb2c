"""`confsec analyze` on a capture of a real DTLS-SRTP conference on the reference.

alice and bob join the reference in dtls-srtp mode through the suite's own participants; dumpcap
records their media legs and the focus's SIP/TLS port; the run's key log holds the SIP TLS
secrets and, from the participants' DTLS handshakes, one `CLIENT_RANDOM` line per association.
`confsec analyze --keylog` must derive every association's SRTP keys from that and the capture,
pass the clean capture, and find plain RTP that bob's leg sends on its SRTP flow.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread
from tests.analyze.recording import (
    analyze,
    media_filter,
    need_dumpcap,
    plain_burst,
    recording,
)

pytest.importorskip("OpenSSL")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread("analyze-dtls-test")
    yield lt
    lt.close()


def record(tmp_path: Path, loop: LoopThread, name: str, plain_s: float) -> tuple[Path, Path]:
    """A two-party DTLS-SRTP conference, recorded from before the handshakes to the end."""
    need_dumpcap()
    ref = EmbeddedReference.start(tmp_path / "ref", key_management="dtls-srtp")
    keylog = tmp_path / "keylog.txt"
    conf = ConferenceRun(loop, ref.target, keylog=keylog)
    # The handshakes run as the legs open, before their ports can be known: record all of
    # loopback UDP and the SIP port, then keep only this conference's ports (tests running
    # beside this one send on loopback too).
    try:
        bpf = f"udp or tcp port {ref.target.port}"
        with recording(tmp_path / f"all-{name}", bpf) as everything:
            assert conf.create("alice", OfferSpec()).status == 200
            assert conf.join("bob", OfferSpec()).status == 200
            conf.exchange_media(1.0)
            if plain_s:
                conf.runtime.run(plain_burst(conf, "bob", plain_s), 5, "plain burst")
        ports = sorted(int(p) for p in media_filter(conf).split()[1::3])
    finally:
        conf.close()
        ref.stop()
    assert ports, "no media leg was opened"
    cap = tmp_path / name
    keep = f"tcp.port == {ref.target.port} or udp.port in {{{', '.join(map(str, ports))}}}"
    subprocess.run(
        [need_tshark(), "-r", str(everything), "-Y", keep, "-F", "pcap", "-w", str(cap)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cap, keylog


def need_tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed; .ci/run installs it")
    return path


def dtls_lines(keylog: Path) -> int:
    return sum(1 for line in keylog.read_text().splitlines() if line.startswith("CLIENT_RANDOM"))


def test_a_clean_dtls_srtp_conference_capture_passes(tmp_path: Path, loop: LoopThread) -> None:
    cap, keylog = record(tmp_path, loop, "clean.pcap", 0)
    assert dtls_lines(keylog) >= 2  # SIP TLS 1.3 writes no CLIENT_RANDOM: these are DTLS
    rc, verdicts, findings, out = analyze(tmp_path, cap, "--keylog", str(keylog))
    assert findings["findings"] == [], out
    assert (verdicts["R3"], verdicts["R4"]) == ("pass", "pass"), out
    assert "keyed from the key log" in out, out
    assert rc == 0, out
    assert findings["packets"] > 100


def test_plain_rtp_injected_into_a_dtls_srtp_conference_is_found(
    tmp_path: Path, loop: LoopThread
) -> None:
    cap, keylog = record(tmp_path, loop, "inject.pcap", 0.4)
    rc, verdicts, findings, out = analyze(tmp_path, cap, "--keylog", str(keylog))
    kinds = {f["kind"] for f in findings["findings"]}
    assert "unauthenticated-rtp-in-srtp-stream" in kinds, out
    f = next(f for f in findings["findings"] if f["kind"] == "unauthenticated-rtp-in-srtp-stream")
    assert f["packets"] >= 10 and f["requirement"] == "R3"
    assert verdicts["R3"] == "fail", out
    assert rc == 1, out
