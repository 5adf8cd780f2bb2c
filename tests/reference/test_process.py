"""The embedded reference in its own process: what `confsec run` starts without `--target`."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from confsec.errors import ConfigError
from confsec.reference.process import ReferenceProcess, read_env_file


def test_the_child_serves_and_is_described_by_its_profile(tmp_path: Path) -> None:
    ref = ReferenceProcess.start(tmp_path / "ref", defects=frozenset({"accept-plain-rtp"}))
    try:
        assert ref.alive() and ref.pid != os.getpid()
        t = ref.target
        assert t.accounts["alice"].password  # from the env file, never from the profile
        assert t.accounts["alice"].password not in (tmp_path / "ref" / "target.toml").read_text()
        assert t.capabilities.rekey_deadline_s == 3.0
        assert t.capabilities.rekey_latency_bound_s == 1.0
        assert t.capabilities.lost_participant_timeout_s == 2.5
        with socket.create_connection((t.host, t.port), timeout=5):
            pass  # its SIP/TLS listener accepts
        assert (tmp_path / "ref" / "target.env").stat().st_mode & 0o077 == 0
    finally:
        ref.stop()
    assert not ref.alive() and ref.proc.returncode == 0


def test_a_child_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"(?s)exited with 3 before it was ready.*no-such-defect"):
        ReferenceProcess.start(tmp_path / "ref", defects=frozenset({"no-such-defect"}))


def test_env_file_values_are_unquoted(tmp_path: Path) -> None:
    f = tmp_path / "x.env"
    f.write_text("export A_PASSWORD='it'\"'\"'s'\nexport B_PASSWORD=plain\n# comment\n")
    assert read_env_file(f) == {"A_PASSWORD": "it's", "B_PASSWORD": "plain"}
