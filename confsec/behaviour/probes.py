"""Insecure-surface probes: what an attacker learns from the target's SIP listeners.

A secure conference service must offer nothing usable on plain UDP SIP: no answer, or a refusal
that does not tell which users exist, and no password from a dictionary. sipvicious does those
probes (svmap finds SIP speakers, svwar enumerates users, svcrack tries a dictionary), but only
over UDP and only with MD5 digest, so it runs against every UDP listener the profile declares
(confsec.behaviour.udp_probes). Over TLS, where sipvicious cannot go, this module's own client
does the same two probes with SHA-256 digest: whether refusals differ between existing and
unknown users, and whether any dictionary password is accepted.

Observations and judgements are apart, as in `confsec.behaviour.checks`: `observe_*` and
`attempt_digest` talk to the target and return what they saw (`DigestAttempt`,
`DictionaryTrial`); `refusals_alike` and `no_dictionary_password` are pure and raise
`NonConformance` (fail) or `Inconclusive`. The R2 scenarios call both halves through their
steps; `confsec probe` turns the same judgements into `ProbeFinding`s
(confsec.behaviour.probe_findings).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from confsec.behaviour.probe_findings import ProbeFinding, decoy_users, judged
from confsec.codec.digest import DigestError, parse_credentials
from confsec.errors import (
    ConfsecError,
    Inconclusive,
    NonConformance,
    NotApplicable,
    TargetUnreachable,
    TransportError,
)
from confsec.observed import Evidence
from confsec.target.model import Target

if TYPE_CHECKING:
    from confsec.net.ua import UserAgent

AUTH_REFUSALS = frozenset({401, 403, 407})
"""Final statuses that say "not authenticated"; any other answer to a digest response means the
service looked past authentication (an empty offer then gets 488, not 2xx)."""


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

    if not target.factory_uri:
        raise NotApplicable(
            "the target has no factory URI to send an INVITE with a digest response to (it "
            "claims only dial-out creation)"
        )
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


async def tls_probes(target: Target, dictionary: Path | None, keylog: str) -> list[ProbeFinding]:
    """Over SIPS, with SHA-256 digest: user enumeration by refusal, and dictionary attempts."""
    where = f"tls:{target.host}:{target.port}"
    out: list[ProbeFinding] = []
    try:
        attempts = await observe_wrong_passwords(target, keylog)
    except TargetUnreachable as exc:
        return [ProbeFinding("tls-enumeration", where, "inconclusive", str(exc))]
    finding = judged("tls-enumeration", where, lambda: refusals_alike(attempts))
    out += [finding] if finding else []
    if dictionary is not None:
        trials = await observe_dictionary(target, dictionary, keylog, accounts=len(target.accounts))
        for name in target.accounts:  # one finding per account, as svcrack gives
            mine = [t for t in trials if t.account == name]
            finding = judged("tls-dictionary", where, lambda m=mine: no_dictionary_password(m))
            out += [finding] if finding else []
    return out
