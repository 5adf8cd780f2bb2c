"""Insecure-surface probes: sipvicious on UDP listeners, confsec's own client over TLS."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.probes import (
    DictionaryTrial,
    DigestAttempt,
    no_dictionary_password,
    observe_wrong_passwords,
    refusals_alike,
    tls_probes,
)
from confsec.behaviour.udp_probes import (
    EXIT_FOUND,
    UdpSurface,
    observe_udp,
    sipvicious_probes,
    udp_no_enumeration,
)
from confsec.errors import Inconclusive, NonConformance
from confsec.reference.deployment import EmbeddedReference
from confsec.target.model import Listener
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


# -- the judgements, on observations built by hand -------------------------------------------


def refusal(user: str, existing: bool, status: int | None = 403, **kw: object) -> DigestAttempt:
    fields: dict = {"challenged": True, "algorithm": "SHA-256", "reason": "Forbidden", **kw}
    return DigestAttempt(user, existing, status=status, **fields)


def alike(*, unknown: dict | None = None, known: dict | None = None) -> list[DigestAttempt]:
    """alice and bob exist, two decoys do not; `known`/`unknown` change their answers."""
    return [
        refusal("alice", True, **(known or {})),
        refusal("bob", True, **(known or {})),
        refusal("nobody1", False, **(unknown or {})),
        refusal("nobody2", False, **(unknown or {})),
    ]


def test_identical_refusals_pass() -> None:
    refusals_alike(alike())
    refusals_alike(
        alike(
            known={"status": 401, "rechallenged": True, "reason": "Unauthorized"},
            unknown={"status": 401, "rechallenged": True, "reason": "Unauthorized"},
        )
    )


@pytest.mark.parametrize(
    ("unknown", "differ"),
    [
        ({"status": 404, "reason": "Unknown user"}, "status and reason phrase"),
        ({"reason": "Unknown user"}, "reason phrase"),
        ({"status": 401, "reason": "Forbidden", "rechallenged": True}, "status and re-challenge"),
        ({"challenged": False}, "challenge"),
    ],
)
def test_a_refusal_that_differs_for_unknown_users_fails(unknown: dict, differ: str) -> None:
    with pytest.raises(NonConformance, match=f"they differ in the {differ}:") as exc:
        refusals_alike(alike(unknown=unknown))
    assert "nobody1 (unknown)" in str(exc.value) and "alice (exists)" in str(exc.value)


def test_one_unknown_user_answered_apart_is_a_leak_too() -> None:
    attempts = alike()
    attempts[-1] = refusal("nobody2", False, status=404, reason="Not Found")
    with pytest.raises(NonConformance):
        refusals_alike(attempts)


def test_answers_that_differ_only_in_combination_still_leak() -> None:
    attempts = [
        refusal("alice", True, status=403, reason="A"),
        refusal("bob", True, status=404, reason="B"),
        refusal("nobody1", False, status=403, reason="B"),
        refusal("nobody2", False, status=404, reason="A"),
    ]
    with pytest.raises(NonConformance, match="combination of status and reason phrase"):
        refusals_alike(attempts)


def test_a_busy_answer_among_alike_refusals_is_inconclusive() -> None:
    attempts = alike()
    attempts[-1] = refusal("nobody2", False, status=503, reason="Service Unavailable")
    with pytest.raises(Inconclusive, match="load or health"):
        refusals_alike(attempts)


@pytest.mark.parametrize(
    ("attempts", "why"),
    [
        (
            [*alike()[:2], DigestAttempt("nobody1", False, error="no answer: timed out")],
            "no answer",
        ),
        (alike()[:2], "both existing and unknown"),
        (alike(known={"challenged": False}, unknown={"challenged": False}), "never challenged"),
        (alike(known={"status": 488}, unknown={"status": 488}), "past authentication"),
    ],
)
def test_what_cannot_be_compared_is_inconclusive(attempts: list, why: str) -> None:
    with pytest.raises(Inconclusive, match=why):
        refusals_alike(attempts)


def surface(**kw: object) -> UdpSurface:
    fields: dict = {"answers_sip": True, "svwar_exit": 0, **kw}
    return UdpSurface(Listener("udp", "192.0.2.1", 5060), ("1001", "1002"), ("nobodyx",), **fields)


def test_svwar_listing_accounts_fails() -> None:
    with pytest.raises(
        NonConformance, match=r"udp:192.0.2.1:5060: svwar tells existing users \(1001\)"
    ):
        udp_no_enumeration([surface(svwar_exit=EXIT_FOUND, listed=("1001",))])


def test_a_quiet_or_uniform_listener_passes() -> None:
    udp_no_enumeration([surface(answers_sip=False, svwar_exit=None), surface()])


@pytest.mark.parametrize(
    ("seen", "why"),
    [
        ([], "no plain UDP listener"),
        (
            [surface(error="sipvicious_svmap is not on PATH (pip install sipvicious)")],
            "pip install",
        ),
        ([surface(svwar_exit=EXIT_FOUND, listed=("1001", "nobodyx"))], "do not exist"),
        ([surface(svwar_exit=EXIT_FOUND)], "reports a find it does not list"),
        ([surface(svwar_exit=1)], "svwar failed"),
    ],
)
def test_what_svwar_cannot_judge_is_inconclusive(seen: list, why: str) -> None:
    with pytest.raises(Inconclusive, match=why):
        udp_no_enumeration(seen)


def test_missing_sipvicious_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # nor beside the interpreter
    seen = observe_udp(Listener("udp", "127.0.0.1", 9), ["alice"], timeout=5)
    with pytest.raises(Inconclusive, match="pip install sipvicious"):
        udp_no_enumeration([seen])


def trial(word: int | None, passed: bool, account: str = "alice") -> DictionaryTrial:
    status, reason = (488, "Not Acceptable Here") if passed else (403, "Forbidden")
    return DictionaryTrial(account, word, refusal(account, True, status=status, reason=reason))


def test_a_dictionary_word_that_gets_past_authentication_fails() -> None:
    trials = [trial(None, True), trial(1, False), trial(2, True)]
    with pytest.raises(NonConformance, match=r"password of alice is in the dictionary \(line 2;"):
        no_dictionary_password(trials)


def test_dictionary_refused_between_two_working_controls_passes() -> None:
    no_dictionary_password([trial(None, True), trial(1, False), trial(2, False), trial(None, True)])


@pytest.mark.parametrize(
    ("trials", "why"),
    [
        ([trial(None, False), trial(1, False), trial(None, False)], "real password did not get"),
        ([trial(None, True), trial(1, False), trial(None, False)], "lockout"),
        ([trial(None, True), trial(1, False)], "did not finish"),
        ([], "no account was tried"),
    ],
)
def test_dictionary_without_working_controls_is_inconclusive(trials: list, why: str) -> None:
    with pytest.raises(Inconclusive, match=why):
        no_dictionary_password(trials)


# -- the observations, against real servers on loopback --------------------------------------


class _Everyone(dict):
    """A user table in which every name is found: the registrar challenges all alike."""

    def __contains__(self, name: object) -> bool:
        return True


def test_svwar_on_a_registrar_that_challenges_everyone_alike_passes() -> None:
    server = WeakUdpRegistrar({"1001": "secret123"})
    server.users = _Everyone(server.users)
    try:
        seen = observe_udp(Listener("udp", "127.0.0.1", server.port), ["1001"], timeout=60)
    finally:
        server.close()
    assert seen.answers_sip and seen.svwar_exit == 0 and seen.listed == (), seen
    udp_no_enumeration([seen])


def test_svwar_on_the_weak_registrar_is_a_fail_and_on_a_silent_port_a_pass(
    weak: WeakUdpRegistrar,
) -> None:
    leaky = observe_udp(Listener("udp", "127.0.0.1", weak.port), ["1001", "1002"], timeout=60)
    assert leaky.answers_sip and set(leaky.listed) == {"1001", "1002"}, leaky
    with pytest.raises(NonConformance, match="1001, 1002"):
        udp_no_enumeration([leaky])
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        quiet = observe_udp(Listener("udp", "127.0.0.1", silent.getsockname()[1]), ["1001"], 60)
    assert not quiet.answers_sip and quiet.error is None, quiet
    udp_no_enumeration([quiet])


def test_the_enumeration_defect_is_seen_over_tls(tmp_path: Path) -> None:
    import asyncio

    ref = EmbeddedReference.start(
        tmp_path / "ref", defects=frozenset({"digest-reveals-unknown-users"})
    )
    try:
        attempts = asyncio.run(observe_wrong_passwords(ref.target, str(tmp_path / "keylog")))
    finally:
        ref.stop()
    assert [a.existing for a in attempts] == [True, True, True, False, False], attempts
    assert {(a.status, a.reason) for a in attempts if not a.existing} == {(404, "Unknown user")}
    assert all(a.challenged and a.algorithm == "SHA-256" for a in attempts), attempts
    with pytest.raises(NonConformance, match="status and reason phrase"):
        refusals_alike(attempts)


@pytest.mark.timeout(300)
def test_the_r2_probe_scenarios_through_a_profile(tmp_path: Path) -> None:
    """The profile path end to end: a declared UDP listener that tells the profile's users
    apart (svwar fails it), and a dictionary without the accounts' passwords (both controls
    hold, so it passes)."""
    from tests.cli_runner import confsec_run
    from tests.target.test_reference_profile import served

    words = tmp_path / "words.txt"
    words.write_text("123456\npassword\nconference\n")
    leaky = WeakUdpRegistrar({"alice": "x9!long-and-random", "bob": "y9!long-and-random"})
    udp = "No plain SIP listener tells which users exist"
    dictionary = "No account's password is in the dictionary"
    try:
        for profile, env in served(tmp_path):
            with profile.open("a") as f:
                f.write(f'\n[probes]\ndictionary = "{words}"\n\n[[listeners]]\n')
                f.write(f'transport = "udp"\nhost = "127.0.0.1"\nport = {leaky.port}\n')
            k = "listener_tells or password_is_in"
            args = ("--target", str(profile), "--req", "R2", "-k", k)
            result = confsec_run(tmp_path / "reports", *args, timeout=240, env=env)
    finally:
        leaky.close()
    r2 = next(r for r in result.verdicts()["requirements"] if r["id"] == "R2")
    got = {s["name"]: (s["verdict"], s["reason"]) for s in r2["scenarios"]}
    assert set(got) == {udp, dictionary}, result.output[-3000:]
    assert got[udp][0] == "fail" and "svwar tells existing users (alice, bob" in got[udp][1], got
    assert got[dictionary] == ("pass", ""), got
    assert result.code == 1, result.output[-3000:]


def test_plain_listeners_are_claimed_by_declaring_a_udp_listener() -> None:
    from confsec.target.model import Capabilities, Target

    bare = Target("t", "example.test", "127.0.0.1", 5061, "sips:f@example.test", Path("ca"), {})
    tls_only = dataclasses.replace(bare, listeners=(Listener("tls", "127.0.0.1", 5061),))
    udp = dataclasses.replace(bare, listeners=(Listener("udp", "127.0.0.1", 5060),))
    assert not bare.claims("plain_listeners") and not tls_only.claims("plain_listeners")
    assert udp.claims("plain_listeners")
    mutual = dataclasses.replace(bare, capabilities=Capabilities(mutual_tls=True))
    assert mutual.claims("mutual_tls") and not bare.claims("mutual_tls")
