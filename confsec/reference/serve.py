"""`confsec reference serve`: the embedded reference as a stand-alone target, in the foreground.

The suite's claim that it can test systems it did not build is only as good as the profile path.
Serving the reference as a separate process, described by a written profile and with passwords
passed through environment variables, lets the project's own tests run `confsec run --target`
against it exactly as a vendor would, and compare the verdicts with the embedded default.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path

from confsec.reference.deployment import EmbeddedReference
from confsec.target.profile_text import profile_text

ENV_PREFIX = "CONFSEC_REF_"


def env_names(users: list[str]) -> dict[str, str]:
    """The environment variable that carries each account's password."""
    return {u: f"{ENV_PREFIX}{u.upper()}_PASSWORD" for u in users}


def serve(
    defects: frozenset[str],
    profile_file: Path | None,
    env_file: Path | None,
    workdir: Path | None,
    stop: threading.Event | None = None,
    interop: frozenset[str] = frozenset(),
    evidence_dir: Path | None = None,
    key_management: str = "sdes",
) -> int:
    """Start the reference, write its profile and env file, and run until SIGINT/SIGTERM."""
    work = workdir or Path(tempfile.mkdtemp(prefix="confsec-reference-"))
    work.mkdir(parents=True, exist_ok=True)
    reference = EmbeddedReference.start(
        work,
        defects=defects,
        evidence_dir=evidence_dir or work,
        interop=interop,
        key_management=key_management,
    )
    stop = stop or threading.Event()
    try:
        target = reference.target
        names = env_names(list(target.accounts))
        profile = profile_text(target, names)
        env_lines = "".join(
            f"export {names[u]}={shlex.quote(a.password)}\n" for u, a in target.accounts.items()
        )
        profile_path = profile_file or work / "target.toml"
        env_path = env_file or profile_path.with_suffix(".env")
        _write_private(env_path, env_lines)
        # The profile goes last: its appearance tells a waiting caller that everything is ready.
        tmp = profile_path.with_suffix(".tmp")
        tmp.write_text(profile)
        tmp.replace(profile_path)
        label = ", ".join(sorted(defects | {f"interop {f}" for f in interop})) or "compliant"
        label += f", {key_management}"
        print(
            f"confsec reference ({label}) listening on sips {target.host}:{target.port}\n"
            f"profile: {profile_path}\nenv file: {env_path} (source it: . {env_path})\n"
            f"operator console: {reference.deployment.config.operator_socket}",
            flush=True,
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            if threading.current_thread() is threading.main_thread():
                signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    finally:
        reference.stop()
    return 0


def _write_private(path: Path, text: str) -> None:
    """Secrets get mode 0600 from the start, not after a window in which others could read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve(frozenset(), None, None, None))
