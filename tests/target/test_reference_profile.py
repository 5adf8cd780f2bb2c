"""The README's run command against the reference through a target profile.

`confsec reference serve` runs the reference as a separate process and writes its profile and
an env file with the passwords; `confsec run --target` must then give, scenario by scenario, the
verdicts of the embedded default. This is the proof that the profile path loses nothing.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import ROOT, confsec_run


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


def served(tmp_path: Path, *defects: str) -> Iterator[tuple[Path, dict[str, str]]]:
    profile = tmp_path / "target.toml"
    args = [a for d in defects for a in ("--defect", d)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "confsec.cli",
            "reference",
            "serve",
            *args,
            "--workdir",
            str(tmp_path / "work"),
            "--write-profile",
            str(profile),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not profile.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "reference serve wrote no profile"
            time.sleep(0.1)
        env_file = profile.with_suffix(".env")
        assert env_file.stat().st_mode & 0o077 == 0, "the env file holds secrets: mode 0600"
        assert "password =" not in profile.read_text()
        yield profile, read_env(env_file)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def run(tmp_path: Path, name: str, *args: str, env: dict[str, str] | None = None):
    result = confsec_run(tmp_path / name, *args, timeout=300, env=env)
    doc = result.verdicts()
    verdicts = {
        (r["id"], s["name"], json.dumps(s["params"], sort_keys=True)): s["verdict"]
        for r in doc["requirements"]
        for s in r["scenarios"]
    }
    return result.code, {r["id"]: r["verdict"] for r in doc["requirements"]}, verdicts


@pytest.mark.slow
@pytest.mark.timeout(660)  # the whole suite twice (about a minute each on a quiet machine)
@pytest.mark.parametrize(("defect", "reqs"), [(None, ()), ("accept-plain-rtp", ("--req", "R3"))])
def test_run_through_a_profile_gives_the_embedded_verdicts(
    tmp_path: Path, defect: str | None, reqs: tuple[str, ...]
) -> None:
    defects = (defect,) if defect else ()
    embedded = run(tmp_path, "embedded", *reqs, *(a for d in defects for a in ("--defect", d)))
    for profile, env in served(tmp_path, *defects):
        via_profile = run(tmp_path, "profile", "--target", str(profile), *reqs, env=env)
    assert via_profile == embedded
    assert embedded[0] == (1 if defect else 0)
    assert len(embedded[2]) >= (8 if defect else 20)
