"""Recording real loopback captures for the analyser's tests (dumpcap, as a vendor would).

The filter names only the ports of the conference the test drives, so traffic of other tests
running on the same machine never enters the capture.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from tests.cli_runner import confsec


def need_dumpcap() -> str:
    path = shutil.which("dumpcap")
    if path is None:
        pytest.skip("dumpcap (tshark) is not installed; .ci/run installs it")
    return path


@contextmanager
def recording(path: Path, bpf: str) -> Iterator[Path]:
    """dumpcap on lo into a classic pcap file while the block runs."""
    proc = subprocess.Popen(
        [need_dumpcap(), "-q", "-i", "lo", "-f", bpf, "-P", "-w", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while not (path.exists() and path.stat().st_size >= 24):
        if proc.poll() is not None:
            pytest.fail(f"dumpcap failed: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("dumpcap did not start capturing")
        time.sleep(0.05)
    time.sleep(0.3)  # the file header is written before the socket filter is attached
    try:
        yield path
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def media_filter(conf: ConferenceRun, extra_ports: tuple[int, ...] = ()) -> str:
    """A BPF filter for the media legs of every participant (and any extra ports)."""
    ports = {leg.local_addr[1] for p in conf.participants.values() for leg in p.legs.values()}
    ports |= set(extra_ports)
    return " or ".join(f"port {p}" for p in sorted(ports))


def write_keys(conf: ConferenceRun, path: Path) -> Path:
    rows = [{"suite": r["suite"], "inline": r["inline"]} for r in conf.ledger.keys_for_evidence()]
    path.write_text(json.dumps(rows))
    return path


def analyze(tmp_path: Path, capture: Path, *args: str) -> tuple[int, dict, dict, str]:
    """Run `confsec analyze` on a capture: exit code, verdict by id, findings, output."""
    reports = tmp_path / "reports"
    result = confsec("analyze", str(capture), "--reports", str(reports), *args, timeout=120)
    verdicts = json.loads((reports / "verdicts.json").read_text())
    findings = json.loads((reports / "capture-findings.json").read_text())
    by_id = {r["id"]: r["verdict"] for r in verdicts["requirements"]}
    return result.code, by_id, findings, result.output


async def plain_burst(conf: ConferenceRun, name: str, seconds: float) -> None:
    """`name`'s legs go on from the same sockets and SSRCs, without SRTP, for `seconds`."""
    p = conf.participant(name)
    p.start_media(plain=True)
    await asyncio.sleep(seconds)
    p.stop_media()
