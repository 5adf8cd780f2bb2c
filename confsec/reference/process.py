"""The embedded reference in a process of its own, for `confsec run` without `--target`.

In the suite's process the reference and the participants shared one interpreter lock: at 50
participants the process was busy handling media for both sides, and on a loaded machine the
reference's rekeys and the suite's reading of them delayed each other, so a verdict depended on
the machine. A child process gives each side its own lock and its own CPU accounting (the
suite's punctuality monitor reads the reference's from /proc), and it tests the reference the
way a vendor's system is tested: through the profile and environment variables that
`confsec reference serve` writes, nothing shared in memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from confsec.errors import ConfigError, TargetUnreachable
from confsec.target.model import Target
from confsec.target.profile import load_profile

__all__ = ["ReferenceProcess", "read_env_file"]

READY_MARK = "listening on sips"
_PR_SET_PDEATHSIG = 1


def read_env_file(path: Path) -> dict[str, str]:
    """The `export NAME=value` lines `confsec reference serve` writes (values shell-quoted)."""
    import shlex

    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


def _drain(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(Exception):
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the reference ends when the suite's process does, even if it is killed."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ReferenceProcess:
    """`confsec reference serve` as a child; `target` describes it as its profile does."""

    def __init__(self, proc: subprocess.Popen[str], target: Target, workdir: Path):
        self.proc = proc
        self.target = target
        self.workdir = workdir

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        defects: frozenset[str] = frozenset(),
        evidence_dir: Path | None = None,
        timeout: float = 60.0,
        key_management: str = "sdes",
    ) -> ReferenceProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        profile = workdir / "target.toml"
        cmd = [sys.executable, "-m", "confsec.cli", "reference", "serve"]
        cmd += ["--workdir", str(workdir), "--write-profile", str(profile)]
        if evidence_dir is not None:
            cmd += ["--evidence", str(evidence_dir)]
        for d in sorted(defects):
            cmd += ["--defect", d]
        cmd += ["--key-management", key_management]
        log = workdir / "reference.log"
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            cls._await_ready(proc, timeout, log)
            # Whatever it prints later goes on being read, so that a full pipe never stalls it.
            threading.Thread(target=_drain, args=(proc,), daemon=True).start()
            env = read_env_file(profile.with_suffix(".env"))
            target = load_profile(profile, environ=env)
        except BaseException:
            cls._end(proc)
            raise
        return cls(proc, target, workdir)

    @staticmethod
    def _await_ready(proc: subprocess.Popen[str], timeout: float, log: Path) -> None:
        """Block until the child prints that it listens (it writes its profile first)."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not sel.select(left):
                    continue
                line = proc.stdout.readline()
                if READY_MARK in line:
                    return
                if not line:  # the child ended before it was ready
                    proc.wait(5)
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise ConfigError(
                        f"the embedded reference exited with {proc.returncode} before it was "
                        f"ready; its log ({log}) ends:\n{tail}"
                    )
        raise TargetUnreachable(
            f"the embedded reference was not ready within {timeout:g} s; see {log}"
        )

    @staticmethod
    def _end(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop(self) -> None:
        self._end(self.proc)

    def alive(self) -> bool:
        return self.proc.poll() is None
