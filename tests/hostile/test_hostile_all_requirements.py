"""The evidence rule's safety net: targets that refuse, accept or ignore everything pass nothing.

A pass must rest on an observation of the required behaviour. Three hostile targets give the
suite nothing to observe but their TLS certificate:

- `refuse-all`: TLS works, every request gets 403;
- `accept-all-silent`: TLS works, every INVITE gets 200 OK with a valid SDES answer (plain RTP
  and null offers too), every other request 200 OK, and no media ever flows;
- `ignore-all`: TLS works, and no request is ever answered.

`accept-all-silent` runs a second time with a profile that claims DTLS-SRTP: the participants
offer it, and get SDES answers and no handshake.

Each runs `confsec run --target` for all fifteen requirements, with a profile that claims every
capability (so that no scenario is skipped as not applicable) and short timeouts. The rule:
no scenario passes, except those in `MAY_PASS`, each listed with the observation its pass rests
on. Whatever else these targets get (fail, inconclusive, error) is a verdict about them; a pass
would be a pass on nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cli_runner import confsec_run
from tests.hostile.hostile_server import (
    ALL_USERS,
    HostileServer,
    add_dictionary,
    make_pki,
    write_profile,
)
from tests.once import once

TIMEOUTS = (2.0, 1.5, 1.5)  # connect, transaction, media
RUN_TIMEOUT = 420.0
MODES = ("refuse-all", "accept-all-silent", "ignore-all")
DTLS_RUN = "accept-all-silent, claiming dtls-srtp"
#: Run name -> (hostile server mode, the key management the profile claims). The last one
#: offers DTLS-SRTP to a server that answers SDES to anything and sends no media.
RUNS = {m: (m, "sdes") for m in MODES} | {DTLS_RUN: ("accept-all-silent", "dtls-srtp")}
CERT = "The service presents a certificate valid for its domain"
INTERFACE_TLS = "Every interface that carries media keys is protected by TLS"
UDP_LISTENERS = "No plain SIP listener tells which users exist"
#: The hostile servers answer SDES: the scenarios of a DTLS-SRTP target do not apply to them.
DTLS_ONLY = {
    "An SDES offer to a DTLS-SRTP service is refused or answered with DTLS-SRTP",
    "A certificate that does not match the signalled fingerprint gets no association",
    "No media flows before the DTLS handshake has made its keys",
}

#: Scenario title -> the observation its pass rests on, per mode. Nothing else may pass.
MAY_PASS: dict[str, dict[str, str]] = {
    "refuse-all": {
        CERT: "the TLS handshake shows a certificate valid for the service domain",
        INTERFACE_TLS: "the named interface (the same listener) presents a valid certificate",
    },
    "ignore-all": {
        CERT: "the TLS handshake shows a certificate valid for the service domain",
        INTERFACE_TLS: "the named interface (the same listener) presents a valid certificate",
    },
    DTLS_RUN: {
        CERT: "the TLS handshake shows a certificate valid for the service domain",
        INTERFACE_TLS: "the named interface (the same listener) presents a valid certificate",
    },
    "accept-all-silent": {
        CERT: "the TLS handshake shows a certificate valid for the service domain",
        INTERFACE_TLS: "the named interface (the same listener) presents a valid certificate",
        "A user creates a secure conference through the factory URI": (
            "the 200 OK is observed: a SIPS conference URI with ;isfocus and an SRTP answer"
        ),
        "A participant with valid credentials is admitted": (
            "the admission with an SRTP answer is observed (that it also admits without "
            "credentials fails 'A request without credentials is challenged and refused')"
        ),
        "An unknown crypto suite offered first is skipped for a supported one": (
            "the answer is observed to select the supported suite with its tag"
        ),
        "A null cipher offer is refused (UNENCRYPTED_SRTP)": (
            "the answer is observed to drop UNENCRYPTED_SRTP and encrypt with a full key, which "
            "is compliant"
        ),
        "Unicast media keys reach only their holders, in their SDP answers over TLS": (
            "every key its answers issued is found in those answers over TLS, and in none of "
            "the other messages it sent, which is compliant"
        ),
    },
}


def run_mode(
    mode: str, workdir: Path, key_management: str = "sdes"
) -> tuple[int | None, dict[str, tuple[str, str]], str]:
    pki = make_pki(workdir / "pki", ALL_USERS)
    server = HostileServer(mode, pki)
    port = server.start()
    try:
        profile, env = write_profile(
            workdir, port, pki, TIMEOUTS, claim_all=True, key_management=key_management
        )
        add_dictionary(profile, workdir)
        run = confsec_run(
            workdir / "reports",
            "--target",
            str(profile),
            # Two workers: these runs mostly wait out timeouts, and CI has two cores to wait on.
            "-n",
            "2",
            timeout=RUN_TIMEOUT,
            env=env,
            allow_timeout=True,
        )
    finally:
        server.stop()
    verdicts = {
        s.get("title") or s["name"]: (s["verdict"], s.get("reason") or "")
        for r in run.requirements().values()
        for s in r["scenarios"]
    }
    return run.code, verdicts, run.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    # The runs once for both xdist workers (tests/once.py), side by side.
    def produce(work: Path) -> dict[str, tuple]:
        dirs = {name: work / f"run{i}" for i, name in enumerate(RUNS)}
        for d in dirs.values():
            d.mkdir(exist_ok=True)
        with ThreadPoolExecutor(len(RUNS)) as pool:
            futures = {
                name: pool.submit(run_mode, mode, dirs[name], km)
                for name, (mode, km) in RUNS.items()
            }
            return {name: f.result() for name, f in futures.items()}

    return once(tmp_path_factory, "hostile-all-requirements", produce)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 120)
@pytest.mark.parametrize("mode", list(RUNS))
def test_nothing_passes_on_nothing(mode: str, runs: dict[str, tuple]) -> None:
    code, verdicts, output = runs[mode]
    print(f"\n{mode}: exit {code}, {len(verdicts)} scenarios")
    for name, (verdict, reason) in sorted(verdicts.items()):
        print(f"  {verdict:15} {name[:90]}  {reason[:100]}")
    assert code is not None, f"the run did not finish in {RUN_TIMEOUT:g} s"
    assert "Traceback" not in output, output[-3000:]
    assert code in (1, 2, 4), output[-3000:]
    # Every scenario ran: the profile claims every capability (the hostile server has no
    # plain UDP listener to declare, and keys with SDES: those scenarios alone do not apply).
    not_applicable = {n: r for n, (v, r) in verdicts.items() if v == "not applicable"}
    if RUNS[mode][1] == "sdes":
        assert set(not_applicable) <= {UDP_LISTENERS} | DTLS_ONLY, sorted(not_applicable)
    else:  # the SDES-only scenarios do not apply to a DTLS-SRTP target, and say so
        sdes_only = {n for n, r in not_applicable.items() if "not sdes" in r}
        assert set(not_applicable) - sdes_only <= {UDP_LISTENERS}, sorted(not_applicable)
        assert not DTLS_ONLY & set(not_applicable), sorted(not_applicable)
    assert len(verdicts) >= 60, sorted(verdicts)
    passed = {n for n, (v, _) in verdicts.items() if v == "pass"}
    unexplained = sorted(passed - set(MAY_PASS[mode]))
    assert not unexplained, f"{mode}: passes that rest on nothing: {unexplained}"
