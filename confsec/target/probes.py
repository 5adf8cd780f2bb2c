"""Insecure-surface probes: what an attacker learns from the target's SIP listeners.

A secure conference service must offer nothing usable on plain UDP SIP: no answer, or a refusal
that does not tell which users exist, and no password from a dictionary. sipvicious does those
probes (svmap finds SIP speakers, svwar enumerates users, svcrack tries a dictionary), but only
over UDP and only with MD5 digest, so it runs against every UDP listener the profile declares.
Over TLS, where sipvicious cannot go, confsec's own client does the same two probes with
SHA-256 digest: whether refusals differ between existing and unknown users, and whether any
dictionary password is accepted.

Each probe yields `ProbeFinding`s; `severity` is 'fail' for a leak or a cracked password,
'info' for what is only worth knowing (a UDP listener answers), 'inconclusive' when a tool could
not judge (sipvicious crashes on a SHA-256 challenge, for one).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from confsec.errors import ConfsecError
from confsec.target.model import Listener, Target

EXIT_FOUND = 40  # svwar, svcrack: "found something"


@dataclass(frozen=True)
class ProbeFinding:
    probe: str
    listener: str
    severity: str
    sentence: str

    def as_dict(self) -> dict[str, str]:
        return {
            "probe": self.probe,
            "listener": self.listener,
            "severity": self.severity,
            "sentence": self.sentence,
        }


def decoy_users(n: int = 3) -> list[str]:
    """User names that surely do not exist, to compare refusals against."""
    return [f"nobody{secrets.token_hex(3)}" for _ in range(n)]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfsecError(f"{name} is not on PATH (pip install sipvicious)")
    return path


def _run(argv: list[str], timeout: float) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return proc.returncode, proc.stdout + proc.stderr


def sipvicious_probes(
    listener: Listener, users: list[str], dictionary: Path | None, timeout: float = 60.0
) -> list[ProbeFinding]:
    """svmap, svwar (the accounts plus decoys) and svcrack (dictionary) on one UDP listener."""
    where = f"udp:{listener.host}:{listener.port}"
    bind = ["-b", "127.0.0.1"] if listener.host.startswith("127.") else []
    out: list[ProbeFinding] = []
    rc, text = _run(
        [_tool("sipvicious_svmap"), *bind, listener.host, "-p", str(listener.port)], timeout
    )
    # svmap 0.3.8 exits 0 even when it lists a device; svwar and svcrack exit 40 on a find.
    if rc != EXIT_FOUND and f"| {listener.host}:{listener.port} " not in text:
        return out  # nothing answers SIP there: nothing to enumerate or crack
    out.append(ProbeFinding("svmap", where, "info", "a SIP service answers over plain UDP"))
    with tempfile.TemporaryDirectory() as tmp:
        names = Path(tmp) / "users.txt"
        names.write_text("\n".join(users + decoy_users()) + "\n")
        rc, text = _run(
            [
                _tool("sipvicious_svwar"),
                *bind,
                "-d",
                str(names),
                "-p",
                str(listener.port),
                listener.host,
            ],
            timeout,
        )
    if rc == EXIT_FOUND:
        found = [u for u in users if u in text]
        out.append(
            ProbeFinding(
                "svwar",
                where,
                "fail",
                f"user enumeration over UDP: svwar tells existing users from unknown ones "
                f"({', '.join(found) or 'see its output'})",
            )
        )
    elif rc not in (0, None):
        out.append(ProbeFinding("svwar", where, "inconclusive", f"svwar exit {rc}"))
    if dictionary is None:
        return out
    for user in users:
        rc, text = _run(
            [
                _tool("sipvicious_svcrack"),
                *bind,
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


async def tls_probes(target: Target, dictionary: Path | None, keylog: str) -> list[ProbeFinding]:
    """Over SIPS, with SHA-256 digest: user enumeration by refusal, and dictionary attempts."""
    from confsec.behaviour.participant import client_ssl_context
    from confsec.net.ua import UserAgent

    where = f"tls:{target.host}:{target.port}"
    out: list[ProbeFinding] = []
    cert_account = next(iter(target.accounts.values()), None)

    async def attempt(user: str, password: str) -> tuple[int | None, str]:
        ua = await UserAgent.start(
            aor=f"sips:{user}@{target.domain}",
            contact_host="127.0.0.1",
            credentials=(user, password),
            client_ssl=client_ssl_context(target, cert_account, keylog),
            server_hostname=target.domain,
        )
        try:
            call = await ua.invite(
                target.factory_uri, b"", dest=target.dest, timeout=target.timeouts.transaction
            )
            return call.response.status, call.response.reason
        except ConfsecError as exc:
            return None, str(exc)
        finally:
            await ua.close()

    wrong = "confsec-" + secrets.token_urlsafe(8)
    real = [a.username for a in target.accounts.values()][:3]
    answers = {u: await attempt(u, wrong) for u in real + decoy_users(2)}
    known = {answers[u] for u in real}
    unknown = {a for u, a in answers.items() if u not in real}
    if known and unknown and known.isdisjoint(unknown):
        out.append(
            ProbeFinding(
                "tls-enumeration",
                where,
                "fail",
                f"a wrong password is refused differently for existing users {sorted(known)} than "
                f"for unknown ones {sorted(unknown)}: the refusal tells which users exist",
            )
        )
    if dictionary is not None:
        words = [w.strip() for w in dictionary.read_text().splitlines() if w.strip()]
        for account in target.accounts.values():
            for word in words:
                status, _ = await attempt(account.username, word)
                # Past authentication is what counts: an empty offer then gets 488, not 2xx.
                if status is not None and status not in (401, 403, 407):
                    out.append(
                        ProbeFinding(
                            "tls-dictionary",
                            where,
                            "fail",
                            f"the password of {account.username} is in the dictionary (SHA-256 "
                            "digest over TLS accepted it)",
                        )
                    )
                    break
    return out


def run_probes(target: Target, keylog: str, timeout: float = 60.0) -> list[ProbeFinding]:
    """Every probe the profile makes possible: sipvicious per UDP listener, then TLS."""
    users = [a.username for a in target.accounts.values()]
    out: list[ProbeFinding] = []
    for listener in target.listeners:
        if listener.transport == "udp":
            out += sipvicious_probes(listener, users, target.probe_dictionary, timeout)
    out += asyncio.run(tls_probes(target, target.probe_dictionary, keylog))
    return out
