"""linphone-daemon (Debian 12 linphone-cli 5.1.65, liblinphone 5.1.65, belle-sip 5.1.64) as the
host of a conference that calls its participants, judged by `confsec run` through the profile
and adapters of fixtures/targets/uahost/linphone (a phone that merges its calls: dial-out only,
the participants' contacts given to the adapters).

What confsec concludes, pinned here (six scenarios, about 80 s):

1. R1, a conference that calls its participants is secure for everyone: pass. Each INVITE came
   over TLS offering RTP/SAVP only (AES_CM_128_HMAC_SHA1_80 and _32, no RTP/AVP alternative);
   462 packets judged, 0 refused, every participant heard the other two and not itself
   (mix-minus: 6 tones heard). linphone also sends 20-byte STUN Binding Requests from each
   call's RTP port; they are not media and are counted apart (`MediaStats.stun`).
2. R1, the plain-RTP-only invitee: pass. erin refused the SRTP offer with 488 and was offered
   nothing else; no plain packet reached her.
3. R2: pass. The host called over TLS presenting its client certificate, which names
   linphone-host.confsec.test and chains to the profile's CA. It checks the participant's
   certificate too, and wants the called host (127.0.0.1) as a DNS subjectAltName: hence
   `client_dns=("127.0.0.1",)` below.
4. R3/R4: pass. 471 packets judged, 0 refused; the 3 target streams use 3 distinct key streams.
5. R6, a participant called in: fail. "incomplete rekey after carol's join: bob's audio stream
   was not rekeyed; alice's audio stream was not rekeyed": the re-INVITEs that put calls on hold
   and into the conference keep the same a=crypto keys (linphone logs "Keeping same crypto
   keys"), so carol's join renews no key.
6. R6, a participant removed: inconclusive. `terminate` on bob's call crashes the daemon (a
   NULL-pointer segfault in libbellesip, under LocalConference::removeParticipant: the outgoing
   call has no contact address), so the remove-participant adapter exits 1 and the removal
   could not be judged. `quit` (end-conference) crashes it the same way.

R5, R7 and R8 are not claimed (no group keys, event package or floor control). The host takes
no requests (belle-sip's TLS listening point accepts and closes every connection), and the
profile says so (`creation_modes = ["dial-out"]`, `reach = "adapter"`): the scenarios that
probe a service listener are not applicable to it.

The other adapter checks below need no suite: the scripts start and stop the daemon, and report
a failed call with the daemon's reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from confsec.pki import TestPki
from tests.cli_runner import ROOT, confsec_run

ADAPTERS = ROOT / "fixtures" / "targets" / "uahost" / "linphone"
DOMAIN = "linphone-host.confsec.test"
USERS = ("alice", "bob", "carol", "erin")

SCENARIOS = (
    "A conference that calls its participants is secure for everyone",
    "A user who can answer only plain RTP is not admitted unprotected",
    "The service authenticates itself to the users it calls",
    "The streams of called participants are protected, each with its own key stream",
    "A participant the service calls in is keyed afresh and the others are rekeyed",
    "A participant the service removes is gone and the others are rekeyed",
)
"""The dial-out scenarios of features/dial_out.feature that apply to a host without REFER."""

OBSERVED = {
    SCENARIOS[0]: ("pass", ""),
    SCENARIOS[1]: ("pass", ""),
    SCENARIOS[2]: ("pass", ""),
    SCENARIOS[3]: ("pass", ""),
    SCENARIOS[4]: (
        "fail",
        "NonConformance: incomplete rekey after carol's join: bob's audio stream was not rekeyed",
    ),
    SCENARIOS[5]: ("inconclusive", "Inconclusive: the adapter for 'remove-participant' failed"),
}
"""Scenario -> (verdict, start of the reason) as confsec concludes (the module docstring)."""


def need_linphone() -> str:
    path = shutil.which("linphone-daemon")
    if path is None:
        pytest.skip("linphone-daemon is not installed (apt-get install linphone-cli)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keyword(name: str) -> str:
    """The pytest-bdd test name of a scenario, for `-k`."""
    return "test_" + re.sub(r"\W+", "_", name.lower()).strip("_")


@dataclass
class Host:
    """A work directory for the daemon with its PKI, and the profile that points at it."""

    workdir: Path
    port: int
    profile: Path
    env: dict[str, str]

    def adapter(self, action: str, **params: str) -> subprocess.CompletedProcess[str]:
        """Run one adapter script as confsec would (parameters in CONFSEC_* variables)."""
        env = {**self.env, **{f"CONFSEC_{k.upper()}": v for k, v in params.items()}}
        return subprocess.run(
            [str(ADAPTERS / f"{action}.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def daemon_pid(self) -> int | None:
        pidfile = self.workdir / "daemon.pid"
        return int(pidfile.read_text()) if pidfile.is_file() else None


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    need_linphone()
    workdir = tmp_path / "host"
    # The host's certificate (`service`) names the domain; the participants' certificates also
    # name 127.0.0.1, the host linphone dials and checks.
    TestPki.create(workdir / "pki", DOMAIN, USERS, client_dns=("127.0.0.1",))
    port = free_port()
    text = (ADAPTERS / "target.toml.template").read_text()
    for key, value in (("@WORKDIR@", workdir), ("@ADAPTERS@", ADAPTERS), ("@SIP_PORT@", port)):
        text = text.replace(key, str(value))
    profile = tmp_path / "linphone.toml"
    profile.write_text(text)
    env = {
        **os.environ,
        "CONFSEC_LINPHONE_WORKDIR": str(workdir),
        "CONFSEC_LINPHONE_SIP_PORT": str(port),
        "CONFSEC_LINPHONE_PASSWORD": "unused",  # nobody registers: the host calls
    }
    h = Host(workdir, port, profile, env)
    try:
        yield h
    finally:
        h.adapter("end-conference")  # whatever a scenario left running


@pytest.mark.timeout(300)
def test_what_confsec_concludes_about_linphone_as_a_conference_host(
    tmp_path: Path, host: Host
) -> None:
    result = confsec_run(
        tmp_path / "reports",
        "--target",
        str(host.profile),
        "--no-allure-html",
        "-k",
        " or ".join(keyword(s) for s in SCENARIOS),
        timeout=240,
        env=host.env,
    )
    doc = result.verdicts()
    assert doc, result.output[-3000:]
    seen = {
        s["name"]: (r["id"], s["verdict"], s["reason"])
        for r in doc["requirements"]
        for s in r["scenarios"]
    }
    assert set(seen) == set(SCENARIOS), (sorted(seen), result.output[-3000:])
    for name, (verdict, reason) in OBSERVED.items():
        _, got, why = seen[name]
        assert (got, why[: len(reason)]) == (verdict, reason), (name, got, why)
    assert "died when call" in seen[SCENARIOS[5]][2]  # the crash, named by the adapter
    by_req = {r["id"]: r["verdict"] for r in doc["requirements"]}
    assert {by_req[r] for r in ("R1", "R2", "R3", "R4")} == {"pass"}, by_req
    assert by_req["R6"] == "fail", by_req
    assert result.code == 1, result.output[-3000:]  # a fail: not conformant


@pytest.mark.timeout(120)
def test_the_adapters_start_and_stop_the_daemon_and_report_a_failed_call(host: Host) -> None:
    started = host.adapter("start-conference", creator="alice")
    assert started.returncode == 0, started.stderr
    assert started.stdout == ""  # a phone has no conference URI to report
    pid = host.daemon_pid()
    assert pid is not None and Path(f"/proc/{pid}").exists()
    with socket.create_connection(("127.0.0.1", host.port), timeout=5):
        pass  # its TLS listener is there (it takes no TLS connection, see the docstring)

    # Nobody listens at bob's contact: the call fails, and the reason is the daemon's.
    contact = f"sips:bob@127.0.0.1:{free_port()}"
    added = host.adapter("add-participant", name="bob", aor=f"sip:bob@{DOMAIN}", contact=contact)
    assert added.returncode == 1
    assert f"the call to {contact} failed" in added.stderr, added.stderr
    assert "Connection refused" in added.stderr, added.stderr
    # A participant never called cannot be removed; the daemon is still up.
    removed = host.adapter("remove-participant", name="carol", contact="sips:carol@127.0.0.1:9")
    assert removed.returncode == 1
    assert "no call to sips:carol@127.0.0.1:9 was placed" in removed.stderr, removed.stderr

    ended = host.adapter("end-conference", conference="")
    assert ended.returncode == 0, ended.stderr
    assert host.daemon_pid() is None
    cmdline = Path(f"/proc/{pid}/cmdline")
    assert not cmdline.exists() or b"linphone-daemon" not in cmdline.read_bytes()
