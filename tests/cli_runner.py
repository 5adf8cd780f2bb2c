"""The `confsec` command line run as users and pipelines run it: a child process in the repo.

One place for what the end-to-end tests share: the interpreter, the working directory, output
captured as text, the wall time, and reading what the run wrote into its reports directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.once import once

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    code: int | None
    """The exit code; None when the command did not finish within its timeout."""
    output: str
    """stdout then stderr."""
    wall: float
    reports: Path | None = None

    def json(self, name: str) -> dict[str, Any]:
        assert self.reports is not None, "this command wrote no reports directory"
        return json.loads((self.reports / name).read_text())

    def verdicts(self) -> dict[str, Any]:
        """verdicts.json, or {} when the run wrote none."""
        if self.reports is None or not (self.reports / "verdicts.json").is_file():
            return {}
        return self.json("verdicts.json")

    def requirements(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.verdicts().get("requirements", [])}

    def scenarios(self) -> dict[str, dict[str, Any]]:
        """Scenario records by name (the outline examples of one name collapse to the last)."""
        return {s["name"]: s for r in self.requirements().values() for s in r["scenarios"]}


def confsec(
    *args: str,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    reports: Path | None = None,
    allow_timeout: bool = False,
) -> CliResult:
    """`python -m confsec.cli *args`; `env` adds to the environment.

    A run that outlives `timeout` raises, unless `allow_timeout` (the hostile-target tests
    assert on it themselves), in which case `code` is None.
    """
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "confsec.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        if not allow_timeout:
            raise

        def text(b: str | bytes | None) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else b or ""

        code, output = None, text(exc.stdout) + text(exc.stderr)
    return CliResult(code, output, time.monotonic() - start, reports)


def confsec_run(reports: Path, *args: str, **kw: Any) -> CliResult:
    """`confsec run --reports <reports> *args`."""
    return confsec("run", "--reports", str(reports), *args, reports=reports, **kw)


class Run:
    """A `confsec run` with its reports, evidence bundle and signing key under `base`."""

    def __init__(
        self, base: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> None:
        self.base = base
        self.reports = base / "reports"
        self.evidence = base / "evidence"
        self.key = base / "signing-key.pem"
        self.result = confsec_run(
            self.reports, "--signing-key", str(self.key), *args, timeout=timeout, env=env
        )
        self.code = self.result.code
        self.output = self.result.output

    def json(self, name: str) -> dict:
        return self.result.json(name)

    def verdicts(self) -> dict[str, Any]:
        return self.result.verdicts()

    def scenarios(self) -> dict[str, dict]:
        return self.result.scenarios()


def compliant_run(factory: pytest.TempPathFactory) -> Run:
    """The whole suite against the compliant embedded reference (SDES), run once per test
    session and read by every test that needs it: self-validation judges its verdicts, the
    command-line tests its reports, the profile test compares its verdicts. Each full run costs
    two to three minutes of a 2-core CI machine; three of them were a third of the test time."""
    return once(factory, "compliant-sdes", Run)
