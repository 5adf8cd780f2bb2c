"""Insecure-surface probes: sipvicious on UDP listeners, confsec's own client over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.reference.deployment import EmbeddedReference
from confsec.target.model import Listener
from confsec.target.probes import sipvicious_probes, tls_probes
from tests.target.weak_udp_sip import WeakUdpRegistrar


@pytest.fixture
def weak() -> Iterator[WeakUdpRegistrar]:
    server = WeakUdpRegistrar({"1001": "secret123", "1002": "x9!long-and-random"})
    yield server
    server.close()


def test_sipvicious_finds_a_leaky_udp_registrar(tmp_path: Path, weak: WeakUdpRegistrar) -> None:
    words = tmp_path / "words.txt"
    words.write_text("123456\npassword\nsecret123\n")
    found = sipvicious_probes(
        Listener("udp", "127.0.0.1", weak.port), ["1001", "1002"], words, timeout=60
    )
    by_probe = {(f.probe, f.severity) for f in found}
    assert ("svmap", "info") in by_probe, found
    assert ("svwar", "fail") in by_probe, found
    cracked = [f.sentence for f in found if f.probe == "svcrack" and f.severity == "fail"]
    assert cracked == ["svcrack found the password of 1001 in the dictionary over UDP"], found


def test_sipvicious_finds_nothing_where_nothing_answers(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        found = sipvicious_probes(Listener("udp", "127.0.0.1", port), ["alice"], None, timeout=60)
    assert found == []


def test_tls_probes_against_the_reference(tmp_path: Path) -> None:
    """Over TLS with SHA-256: the dictionary finds alice's password only if it is in it."""
    ref = EmbeddedReference.start(tmp_path / "ref")
    try:
        import asyncio
        import dataclasses

        target = dataclasses.replace(
            ref.target, accounts={u: ref.target.accounts[u] for u in ("alice", "bob")}
        )
        words = tmp_path / "words.txt"
        words.write_text(f"123456\n{target.accounts['alice'].password}\n")
        found = asyncio.run(tls_probes(target, words, str(tmp_path / "keylog")))
    finally:
        ref.stop()
    dictionary = [f for f in found if f.probe == "tls-dictionary"]
    assert [f.sentence.split()[3] for f in dictionary] == ["alice"], found
    # The focus answers every digest failure with the same "403 Forbidden", so enumeration
    # cannot tell existing users from invented ones.
    assert [f for f in found if f.probe == "tls-enumeration"] == []
