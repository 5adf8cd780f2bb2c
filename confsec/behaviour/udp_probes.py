"""The plain-UDP surface, probed with sipvicious: svmap finds SIP speakers, svwar enumerates
users, svcrack tries a dictionary.

sipvicious speaks only UDP and MD5 digest, so it runs against every UDP listener the profile
declares; over TLS confsec's own client does the same (confsec.behaviour.probes). As there,
observing (`observe_udp`) and judging (`udp_no_enumeration`) are apart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confsec.behaviour.probe_findings import ProbeFinding, decoy_users, judged
from confsec.errors import ConfsecError, Inconclusive, NonConformance
from confsec.observed import Evidence
from confsec.target.model import Listener

EXIT_FOUND = 40  # svwar, svcrack: "found something"
INSTALL_SIPVICIOUS = "pip install sipvicious (a dependency of confsec: pip install -e .)"


def _tool(name: str) -> str:
    # Beside the running interpreter first: the project's venv need not be activated.
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        raise ConfsecError(f"{name} is not on PATH ({INSTALL_SIPVICIOUS})")
    return path


def _run(argv: list[str], timeout: float) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return proc.returncode, proc.stdout + proc.stderr


@dataclass(frozen=True)
class UdpSurface:
    """What svmap and svwar saw on one declared plain-UDP listener."""

    listener: Listener
    accounts: tuple[str, ...]
    decoys: tuple[str, ...]
    answers_sip: bool = False
    """svmap found a SIP speaker there."""
    svwar_exit: int | None = None
    listed: tuple[str, ...] = ()
    """The names svwar lists as existing."""
    error: str | None = None
    """Why the probe could not run or finish (sipvicious missing, a timeout)."""

    @property
    def where(self) -> str:
        return f"udp:{self.listener.host}:{self.listener.port}"


_SVWAR_ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|\s*$")


def _svwar_listed(text: str) -> tuple[str, ...]:
    rows = (_SVWAR_ROW.match(line) for line in text.splitlines())
    return tuple(m.group(1) for m in rows if m and m.group(1) != "Extension")


def _bind(listener: Listener) -> list[str]:
    return ["-b", "127.0.0.1"] if listener.host.startswith("127.") else []


def observe_udp(listener: Listener, users: list[str], timeout: float = 60.0) -> UdpSurface:
    """svmap on one UDP listener and, if SIP answers, svwar with the accounts plus decoys."""
    decoys = tuple(decoy_users())
    seen = UdpSurface(listener, tuple(users), decoys)
    try:
        svmap, svwar = _tool("sipvicious_svmap"), _tool("sipvicious_svwar")
    except ConfsecError as exc:
        return _replace(seen, error=str(exc))
    rc, text = _run([svmap, *_bind(listener), listener.host, "-p", str(listener.port)], timeout)
    # svmap 0.3.8 exits 0 even when it lists a device; svwar and svcrack exit 40 on a find.
    if rc is None:
        return _replace(seen, error=f"svmap did not finish within {timeout:g} s")
    if rc != EXIT_FOUND and f"| {listener.host}:{listener.port} " not in text:
        return seen  # nothing answers SIP there: nothing to enumerate
    with tempfile.TemporaryDirectory() as tmp:
        names = Path(tmp) / "users.txt"
        names.write_text("\n".join([*users, *decoys]) + "\n")
        argv = [svwar, *_bind(listener), "-d", str(names), "-p", str(listener.port)]
        rc, text = _run([*argv, listener.host], timeout)
    if rc is None:
        return _replace(seen, answers_sip=True, error=f"svwar did not finish within {timeout:g} s")
    return _replace(seen, answers_sip=True, svwar_exit=rc, listed=_svwar_listed(text))


def _replace(seen: UdpSurface, **changes: object) -> UdpSurface:
    import dataclasses

    return dataclasses.replace(seen, **changes)  # type: ignore[arg-type]


def udp_no_enumeration(surfaces: Iterable[UdpSurface]) -> Evidence:
    """R2: no declared plain-UDP listener lets svwar tell existing users from unknown ones.

    A listener where nothing answers SIP tells nothing (a secure service need offer nothing
    there). svwar compares each name's answer with the one for a name it invented; listing our
    decoys as well means its baseline did not hold, so that listener is inconclusive.
    """
    surfaces = list(surfaces)
    if not surfaces:
        raise Inconclusive("no plain UDP listener was probed")
    for s in surfaces:
        found = [u for u in s.accounts if u in s.listed]
        if found and not set(s.decoys) & set(s.listed):
            raise NonConformance(
                f"user enumeration over plain UDP at {s.where}: svwar tells existing users "
                f"({', '.join(found)}) from unknown ones"
            )
    for s in surfaces:
        if s.error is not None:
            raise Inconclusive(f"{s.where}: {s.error}")
        if set(s.decoys) & set(s.listed):
            raise Inconclusive(
                f"{s.where}: svwar lists users that do not exist ({', '.join(s.listed)}): its "
                "comparison did not hold"
            )
        if s.answers_sip and s.svwar_exit not in (0, None):
            why = "reports a find it does not list" if s.svwar_exit == EXIT_FOUND else "failed"
            raise Inconclusive(f"{s.where}: svwar {why} (exit {s.svwar_exit})")
    return Evidence.of(
        listeners_probed=len(surfaces),
        listeners_answering_sip=sum(1 for s in surfaces if s.answers_sip),
        names_tried=sum(len(s.accounts) + len(s.decoys) for s in surfaces),
    )


def sipvicious_probes(
    listener: Listener, users: list[str], dictionary: Path | None, timeout: float = 60.0
) -> list[ProbeFinding]:
    """svmap, svwar (the accounts plus decoys) and svcrack (dictionary) on one UDP listener."""
    seen = observe_udp(listener, users, timeout)
    where = seen.where
    out: list[ProbeFinding] = []
    if seen.answers_sip:
        out.append(ProbeFinding("svmap", where, "info", "a SIP service answers over plain UDP"))
    elif seen.error is None:
        return out  # nothing answers SIP there: nothing to enumerate or crack
    finding = judged("svwar", where, lambda: udp_no_enumeration([seen]))
    out += [finding] if finding else []
    if dictionary is None or not seen.answers_sip:
        return out
    for user in users:
        rc, _ = _run(
            [
                _tool("sipvicious_svcrack"),
                *_bind(listener),
                "-u",
                user,
                "-d",
                str(dictionary),
                "-p",
                str(listener.port),
                listener.host,
            ],
            timeout,
        )
        if rc == EXIT_FOUND:
            out.append(
                ProbeFinding(
                    "svcrack",
                    where,
                    "fail",
                    f"svcrack found the password of {user} in the dictionary over UDP",
                )
            )
        elif rc not in (0, None):
            out.append(
                ProbeFinding(
                    "svcrack",
                    where,
                    "inconclusive",
                    f"svcrack could not try {user} (exit {rc}; it knows MD5 digest only)",
                )
            )
    return out
