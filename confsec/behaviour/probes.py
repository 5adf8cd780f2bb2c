"""Insecure-surface probes: what an attacker learns from the target's SIP listeners.

A secure conference service must offer nothing usable on plain UDP SIP: no answer, or a refusal
that does not tell which users exist, and no password from a dictionary. sipvicious does those
probes (svmap finds SIP speakers, svwar enumerates users, svcrack tries a dictionary), but only
over UDP and only with MD5 digest, so it runs against every UDP listener the profile declares.
Over TLS, where sipvicious cannot go, confsec's own client does the same two probes with
SHA-256 digest: whether refusals differ between existing and unknown users, and whether any
dictionary password is accepted.

Observations and judgements are apart, as in `confsec.behaviour.checks`: `observe_*` and
`attempt_digest` talk to the target and return what they saw (`DigestAttempt`, `UdpSurface`,
`DictionaryTrial`); `refusals_alike`, `udp_no_enumeration` and `no_dictionary_password` are pure
and raise `NonConformance` (fail) or `Inconclusive`. The R2 scenarios call both halves through
their steps; `confsec probe` (`run_probes`) turns the same judgements into `ProbeFinding`s:
`severity` is 'fail' for a leak or a cracked password, 'info' for what is only worth knowing (a
UDP listener answers), 'inconclusive' when a probe could not judge (sipvicious crashes on a
SHA-256 challenge, for one).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from confsec.codec.digest import DigestError, parse_credentials
from confsec.errors import (
    ConfsecError,
    Inconclusive,
    NonConformance,
    TargetUnreachable,
    TransportError,
)
from confsec.observed import Evidence
from confsec.target.model import Listener, Target

if TYPE_CHECKING:
    from confsec.net.ua import UserAgent

EXIT_FOUND = 40  # svwar, svcrack: "found something"
AUTH_REFUSALS = frozenset({401, 403, 407})
"""Final statuses that say "not authenticated"; any other answer to a digest response means the
service looked past authentication (an empty offer then gets 488, not 2xx)."""
INSTALL_SIPVICIOUS = "pip install sipvicious (a dependency of confsec: pip install -e .)"


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


def _judged(probe: str, where: str, judge: Callable[[], None]) -> ProbeFinding | None:
    """A judgement as a `confsec probe` finding: None when it passes."""
    try:
        judge()
    except NonConformance as exc:
        return ProbeFinding(probe, where, "fail", str(exc))
    except Inconclusive as exc:
        return ProbeFinding(probe, where, "inconclusive", str(exc))
    return None


# -- over TLS: digest attempts with confsec's own client -------------------------------------


@dataclass(frozen=True)
class DigestAttempt:
    """One INVITE to the factory URI answered with a digest password, and what came back.

    The password is never kept: it may be an account's real one (a dictionary control).
    """

    user: str
    existing: bool
    """The user is one of the profile's accounts (else an invented decoy)."""
    challenged: bool = False
    """The service challenged and the password was presented in a digest response."""
    algorithm: str | None = None
    """The digest algorithm of that response (SHA-256 when the service offers it)."""
    status: int | None = None
    reason: str = ""
    rechallenged: bool = False
    """The final answer re-issues a challenge (401/407 with WWW-/Proxy-Authenticate)."""
    error: str | None = None
    """Why there is no final answer (timeout, lost connection, TLS failure)."""

    @property
    def answer(self) -> str:
        """What an attacker sees of the exchange, in words: the thing refusals are compared by."""
        head = "challenged, then " if self.challenged else "not challenged: "
        tail = ", challenging again" if self.rechallenged else ""
        return f"{head}{self.status} {self.reason}{tail}"

    @property
    def signature(self) -> tuple[bool, int | None, str, bool]:
        return (self.challenged, self.status, self.reason, self.rechallenged)

    @property
    def passed_authentication(self) -> bool:
        return self.challenged and self.status is not None and self.status not in AUTH_REFUSALS


async def attempt_digest(
    target: Target,
    user: str,
    password: str,
    keylog: str,
    *,
    existing: bool,
    keep: Callable[[UserAgent], None] | None = None,
) -> DigestAttempt:
    """INVITE the factory URI over SIPS as `user` with `password` (empty body: nothing is
    created even if it is accepted). A refused connection is `TargetUnreachable` (the
    environment, not a finding); every other failure is recorded in `error`."""
    from confsec.net.startup import client_ssl_context
    from confsec.net.ua import UserAgent

    cert_account = next(iter(target.accounts.values()), None)
    ua = await UserAgent.start(
        aor=f"sips:{user}@{target.domain}",
        contact_host="127.0.0.1",
        credentials=(user, password),
        client_ssl=client_ssl_context(target, cert_account, keylog),
        server_hostname=target.domain,
    )
    if keep is not None:
        keep(ua)  # the caller closes it and keeps its trace (the scenario's SIP ladder)
    try:
        call = await ua.invite(
            target.factory_uri, b"", dest=target.dest, timeout=target.timeouts.transaction
        )
    except TransportError as exc:
        if isinstance(exc.__cause__, ConnectionRefusedError):
            raise TargetUnreachable(f"cannot connect to the service: {exc}") from exc
        return DigestAttempt(user, existing, error=f"transport failure: {exc}")
    except ConfsecError as exc:
        return DigestAttempt(user, existing, error=f"no answer: {exc}")
    finally:
        if keep is None:
            await ua.close()
    value = call.request.headers.get("Authorization") or call.request.headers.get(
        "Proxy-Authorization"
    )
    algorithm = None
    if value is not None:
        try:
            algorithm = parse_credentials(value).algorithm
        except DigestError:
            algorithm = "unparsable"
    r = call.response
    ask = "Proxy-Authenticate" if r.status == 407 else "WWW-Authenticate"
    return DigestAttempt(
        user,
        existing,
        challenged=value is not None,
        algorithm=algorithm,
        status=r.status,
        reason=r.reason,
        rechallenged=r.status in (401, 407) and bool(r.headers.get_all(ask)),
    )


async def observe_wrong_passwords(
    target: Target,
    keylog: str,
    *,
    accounts: int = 3,
    decoys: int = 2,
    keep: Callable[[UserAgent], None] | None = None,
) -> list[DigestAttempt]:
    """The profile's first `accounts` users and `decoys` invented ones, each with one fresh
    wrong password, one after the other (concurrency could make answers differ by load). Stops
    at the first attempt without an answer: the comparison is inconclusive anyway, and a silent
    target should cost one transaction timeout, not five."""
    wrong = "confsec-" + secrets.token_urlsafe(8)
    users = [(a.username, True) for a in list(target.accounts.values())[:accounts]]
    users += [(u, False) for u in decoy_users(decoys)]
    out: list[DigestAttempt] = []
    for user, existing in users:
        out.append(await attempt_digest(target, user, wrong, keylog, existing=existing, keep=keep))
        if out[-1].error is not None:
            break
    return out


def refusals_alike(attempts: Iterable[DigestAttempt]) -> Evidence:
    """R2 (no user enumeration): a wrong password gets the same answer, challenge and reason
    phrase included, whether the user exists or not.

    The reason phrase is free text, but "403 Unknown user" vs "403 Wrong password" tells as much
    as a differing status, so it counts. Every answer seen only for one kind of user gives that
    kind away, so any difference between the two sets fails, unless the odd answer is a 5xx or
    429 (a busy or failing service refused for another cause): then it is inconclusive.
    """
    attempts = list(attempts)
    for a in attempts:
        if a.error is not None:
            raise Inconclusive(f"no answer to {a.user}'s wrong password: {a.error}")
    known = [a for a in attempts if a.existing]
    unknown = [a for a in attempts if not a.existing]
    if not known or not unknown:
        raise Inconclusive("wrong passwords need both existing and unknown users to compare")
    k = {a.signature for a in known}
    u = {a.signature for a in unknown}
    answers = "; ".join(
        f"{a.user} ({'exists' if a.existing else 'unknown'}): {a.answer}" for a in attempts
    )
    if k != u:
        odd = k ^ u
        if not k.isdisjoint(u) and all(
            s[1] is not None and (s[1] >= 500 or s[1] == 429) for s in odd
        ):
            raise Inconclusive(
                f"answers to wrong passwords vary with the service's load or health, not only "
                f"with the user ({answers}): cannot tell whether they leak"
            )
        parts = ("challenge", "status", "reason phrase", "re-challenge")
        what = (
            " and ".join(n for i, n in enumerate(parts) if {s[i] for s in k} != {s[i] for s in u})
            or "combination of status and reason phrase"
        )
        raise NonConformance(
            f"a wrong password is refused differently for existing users than for unknown ones "
            f"(they differ in the {what}: {answers}): the refusal tells which users exist"
        )
    if not any(a.challenged for a in attempts):
        raise Inconclusive(
            f"the service never challenged, so no wrong password was presented ({answers})"
        )
    if all(a.passed_authentication for a in attempts):
        raise Inconclusive(
            f"every wrong password got past authentication ({answers}): there is no refusal "
            "to compare (the scenario 'A wrong password is refused' judges that)"
        )
    return Evidence.of(
        refusals_compared=len(attempts), existing_users=len(known), unknown_users=len(unknown)
    )


# -- over TLS: dictionary passwords ----------------------------------------------------------


@dataclass(frozen=True)
class DictionaryTrial:
    """One account's attempt with one dictionary word, or with its real password (a control:
    before the words, to see that an accepted password is recognised; after them, to see that
    the account was not locked out while the words were tried)."""

    account: str
    word: int | None
    """Line number of the word in the dictionary; None for the real password (the word itself
    is never kept: it may be the password)."""
    attempt: DigestAttempt


def read_dictionary(path: Path) -> list[str]:
    return [w.strip() for w in path.read_text().splitlines() if w.strip()]


async def observe_dictionary(
    target: Target,
    dictionary: Path,
    keylog: str,
    *,
    accounts: int = 3,
) -> list[DictionaryTrial]:
    """For the first `accounts` accounts: the real password, every word, the real password
    again. An account's words stop at the first that gets past authentication, and the whole
    probe at the first attempt without an answer."""
    words = read_dictionary(dictionary)
    out: list[DictionaryTrial] = []
    for account in list(target.accounts.values())[:accounts]:
        control: list[tuple[int | None, str]] = [(None, account.password)]
        plan = control + list(enumerate(words, 1)) + control
        for word, password in plan:
            a = await attempt_digest(target, account.username, password, keylog, existing=True)
            out.append(DictionaryTrial(account.name, word, a))
            if a.error is not None:
                return out
            if word is not None and a.passed_authentication:
                break  # found: the judgement needs no more of this account
    return out


def no_dictionary_password(trials: Iterable[DictionaryTrial]) -> Evidence:
    """R2: no account's password is a dictionary word (over SIPS with the service's digest).

    Judged only where the controls hold: the account's real password got past authentication
    before the words and again after them (else the probe cannot recognise an accepted password,
    or a lockout refused the later words whatever they were).
    """
    trials = list(trials)
    for t in trials:
        if t.attempt.error is not None:
            raise Inconclusive(f"no answer to an attempt for {t.account}: {t.attempt.error}")
    for t in trials:
        if t.word is not None and t.attempt.passed_authentication:
            raise NonConformance(
                f"the password of {t.account} is in the dictionary (line {t.word}; "
                f"{t.attempt.algorithm} digest over TLS accepted it: {t.attempt.answer})"
            )
    if not trials:
        raise Inconclusive("no account was tried")
    by_account: dict[str, list[DictionaryTrial]] = {}
    for t in trials:
        by_account.setdefault(t.account, []).append(t)
    for name, ts in by_account.items():
        controls = [t for t in ts if t.word is None]
        if len(controls) < 2:
            raise Inconclusive(f"the dictionary probe of {name} did not finish")
        first, last = controls[0].attempt, controls[-1].attempt
        if not first.passed_authentication:
            raise Inconclusive(
                f"{name}'s real password did not get past authentication either "
                f"({first.answer}): an accepted dictionary word could not be recognised"
            )
        if not last.passed_authentication:
            raise Inconclusive(
                f"after {len(ts) - 2} dictionary words {name}'s real password was refused too "
                f"({last.answer}; a lockout?): the words say nothing"
            )
    return Evidence.of(
        *(f"{n}'s real password accepted before and after the words" for n in by_account),
        accounts=len(by_account),
        words_tried=sum(1 for t in trials if t.word is not None),
    )


# -- over plain UDP: sipvicious ----------------------------------------------------------------


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
    finding = _judged("svwar", where, lambda: udp_no_enumeration([seen]))
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


async def tls_probes(target: Target, dictionary: Path | None, keylog: str) -> list[ProbeFinding]:
    """Over SIPS, with SHA-256 digest: user enumeration by refusal, and dictionary attempts."""
    where = f"tls:{target.host}:{target.port}"
    out: list[ProbeFinding] = []
    try:
        attempts = await observe_wrong_passwords(target, keylog)
    except TargetUnreachable as exc:
        return [ProbeFinding("tls-enumeration", where, "inconclusive", str(exc))]
    finding = _judged("tls-enumeration", where, lambda: refusals_alike(attempts))
    out += [finding] if finding else []
    if dictionary is not None:
        trials = await observe_dictionary(target, dictionary, keylog, accounts=len(target.accounts))
        for name in target.accounts:  # one finding per account, as svcrack gives
            mine = [t for t in trials if t.account == name]
            finding = _judged("tls-dictionary", where, lambda m=mine: no_dictionary_password(m))
            out += [finding] if finding else []
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
