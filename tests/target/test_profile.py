"""Target profiles: valid ones give the `Target` the fixtures use, bad ones a precise error.

A vendor's first contact with confsec is its profile; a mistake must name the file and the key
and say what is wrong, and the command line must show that without a Python traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from confsec.errors import ConfigError
from confsec.target.profile import load_profile
from confsec.target.profile_text import profile_text

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "fixtures" / "targets"
ENV = {"PW_ALICE": "s3cret-alice", "PW_BOB": "s3cret-bob"}

GOOD = """\
[target]
name = "test target"
domain = "conference.example.test"

[signalling]
host = "127.0.0.1"
port = 5061

[conference]
factory_uri = "sips:conf-factory@conference.example.test"

[tls]
ca_file = "ca.pem"

[timeouts]
transaction = 3

[capabilities]
mutual_tls = true
creation_modes = ["dial-in-factory", "dial-out"]
rekey_batching_window = 0.5

[accounts.alice]
password_env = "PW_ALICE"
client_cert = "alice.pem"
client_key = "alice.key"

[accounts.bob]
username = "bob2"
password_env = "PW_BOB"

[[listeners]]
transport = "udp"
port = 5060

[adapters.add-participant]
command = "true"
timeout = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    for name in ("ca.pem", "alice.pem", "alice.key"):
        (tmp_path / name).write_text("x")
    path = tmp_path / "target.toml"
    path.write_text(text)
    return path


def test_a_valid_profile_gives_a_target(tmp_path: Path) -> None:
    t = load_profile(write(tmp_path, GOOD), ENV)
    assert (t.host, t.port, t.transport, t.domain) == ("127.0.0.1", 5061, "tls", t.domain)
    assert t.ca_file == tmp_path / "ca.pem"
    assert t.accounts["alice"].password == "s3cret-alice"
    assert t.accounts["alice"].client_cert == tmp_path / "alice.pem"
    assert t.accounts["bob"].username == "bob2" and t.accounts["bob"].client_cert is None
    assert t.timeouts.transaction == 3.0 and t.timeouts.connect == 5.0
    assert t.capabilities.claims("mutual_tls") and t.capabilities.claims("dial-out")
    assert not t.capabilities.claims("group_keys")
    assert t.capabilities.rekey_batching_window_s == 0.5
    # Not declared: the default rekey deadline, and no O2 latency bound to judge against.
    assert t.capabilities.rekey_deadline_s == 2.0
    assert t.capabilities.rekey_latency_bound_s is None
    assert not t.capabilities.claims("rekey_latency_bound")
    declared = GOOD.replace(
        "rekey_batching_window = 0.5",
        "rekey_batching_window = 0.5\nrekey_deadline = 4\nrekey_latency_bound = 0.75",
    )
    caps = load_profile(write(tmp_path, declared), ENV).capabilities
    assert (caps.rekey_deadline_s, caps.rekey_latency_bound_s) == (4.0, 0.75)
    assert caps.claims("rekey_latency_bound")
    assert [(ln.transport, ln.port) for ln in t.listeners] == [("udp", 5060)]
    assert t.adapters["add-participant"].timeout == 2.0
    assert "s3cret" not in repr(t)


@pytest.mark.parametrize(
    ("old", "new", "key", "what"),
    [
        ("port = 5061", 'port = "5061"', "signalling.port", "must be an integer, not a string"),
        ("port = 5061", "port = 70000", "signalling.port", "1..65535"),
        ("port = 5061\n", "", "signalling.port", "missing"),
        ('ca_file = "ca.pem"', 'ca_file = "nope.pem"', "tls.ca_file", "no such file"),
        (
            'password_env = "PW_BOB"',
            'password = "hunter2"',
            "accounts.bob.password",
            "inline secrets are not allowed",
        ),
        (
            'password_env = "PW_BOB"',
            'password_env = "PW_CAROL"',
            "accounts.bob.password_env",
            "PW_CAROL is not set",
        ),
        ("transaction = 3", "transaction = -1", "timeouts.transaction", "positive"),
        ("transaction = 3", "transacton = 3", "timeouts.transacton", "unknown key"),
        ("mutual_tls = true", 'mutual_tls = "yes"', "capabilities.mutual_tls", "true or false"),
        (
            "mutual_tls = true",
            'key_management = "zrtp"',
            "capabilities.key_management",
            "'zrtp' is not one of sdes, mikey-ticket, dtls-srtp",
        ),
        (
            "mutual_tls = true",
            'media_handling = "both"',
            "capabilities.media_handling",
            "mixing, switching",
        ),
        ('"dial-out"]', '"dial-up"]', "capabilities.creation_modes", "'dial-up'"),
        (
            'factory_uri = "sips:conf-factory@conference.example.test"',
            'factory_uri = "http://x"',
            "conference.factory_uri",
            "not a sip: or sips: URI",
        ),
        (
            'factory_uri = "sips:conf-factory@conference.example.test"',
            "",
            "conference.factory_uri",
            "claims dial-in-factory",
        ),
        ('client_key = "alice.key"\n', "", "accounts.alice.client_key", "go together"),
        (
            'command = "true"',
            'command = "true"\nentry_point = "m:f"',
            "adapters.add-participant",
            "exactly one of command or entry_point",
        ),
        ('transport = "udp"', 'transport = "sctp"', "listeners[0].transport", "'sctp'"),
        (
            "rekey_batching_window = 0.5",
            "rekey_batching_window = 0.5\nrekey_latency_bound = 0",
            "capabilities.rekey_latency_bound",
            "positive",
        ),
        (
            "rekey_batching_window = 0.5",
            'rekey_batching_window = 0.5\ninternal_interfaces = [{name = "key channel", '
            'host = "127.0.0.1", port = 7000}]',
            "capabilities.internal_interfaces[0].server_name",
            "missing",
        ),
    ],
)
def test_a_malformed_profile_names_the_key(
    tmp_path: Path, old: str, new: str, key: str, what: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_profile(path, ENV)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key}")
    assert what in msg


def test_not_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        load_profile(write(tmp_path, "[target\n"), ENV)
    with pytest.raises(ConfigError, match="cannot read"):
        load_profile(tmp_path / "missing.toml", ENV)


@pytest.mark.parametrize("command", [["run"], []])
def test_the_command_line_shows_the_error_without_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    """`confsec run --target` and `pytest --target` both refuse with the key, exit 3 / 4."""
    path = write(tmp_path, GOOD.replace("port = 5061", "port = true"))
    if command:
        argv = [
            sys.executable,
            "-m",
            "confsec.cli",
            "run",
            "--target",
            str(path),
            "--reports",
            str(tmp_path / "r"),
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "features",
            "--target",
            str(path),
            "-p",
            "no:cacheprovider",
            "-q",
        ]
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**ENV, "PATH": "/usr/bin:/bin"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == (3 if command else 4), out
    assert f"{path}: signalling.port: must be an integer, not a boolean" in out
    assert "Traceback" not in out


def test_the_shipped_profiles_parse(tmp_path: Path) -> None:
    """The reference example and the vendor template are valid once their files exist."""
    for name, env in (
        ("reference.toml", {"CONFSEC_REF_ALICE_PASSWORD": "a", "CONFSEC_REF_BOB_PASSWORD": "b"}),
        ("vendor-template.toml", {"ACME_ALICE_PASSWORD": "a", "ACME_BOB_PASSWORD": "b"}),
    ):
        shutil.copy(TARGETS / name, tmp_path / name)
        text = (tmp_path / name).read_text()
        import re

        for rel in re.findall(r'^(?:ca_file|client_cert|client_key) = "([^"]+)"', text, re.M):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text("x")
        t = load_profile(tmp_path / name, env)
        assert set(t.accounts) == {"alice", "bob"}


def test_a_declared_time_to_notice_a_lost_participant(tmp_path: Path) -> None:
    """`lost_participant_timeout` (R6 vanish scenarios): absent means not claimed; a
    non-positive value names the key; `profile_text` writes it back."""
    plain = load_profile(write(tmp_path, GOOD), ENV).capabilities
    assert plain.lost_participant_timeout_s is None
    assert not plain.claims("lost_participant_timeout")
    declared = "rekey_batching_window = 0.5\nlost_participant_timeout = 3"
    target = load_profile(
        write(tmp_path, GOOD.replace("rekey_batching_window = 0.5", declared)), ENV
    )
    assert target.capabilities.lost_participant_timeout_s == 3.0
    assert target.capabilities.claims("lost_participant_timeout")
    assert "lost_participant_timeout = 3.0" in profile_text(
        target, {n: "PW" for n in target.accounts}
    )
    bad = GOOD.replace("rekey_batching_window = 0.5", "lost_participant_timeout = 0")
    with pytest.raises(ConfigError, match=r"capabilities\.lost_participant_timeout"):
        load_profile(write(tmp_path, bad), ENV)


def test_restricted_membership_is_claimed_only_when_declared(tmp_path: Path) -> None:
    """`restricted_membership` (members-only conferences, RFC 5366 recipient lists): off unless
    declared, a boolean, and written back by `profile_text`."""
    assert not load_profile(write(tmp_path, GOOD), ENV).capabilities.claims("restricted_membership")
    declared = "rekey_batching_window = 0.5\nrestricted_membership = true"
    target = load_profile(
        write(tmp_path, GOOD.replace("rekey_batching_window = 0.5", declared)), ENV
    )
    assert target.capabilities.claims("restricted_membership")
    assert "restricted_membership = true" in profile_text(
        target, {n: "PW" for n in target.accounts}
    )
    bad = GOOD.replace("rekey_batching_window = 0.5", 'restricted_membership = "yes"')
    with pytest.raises(ConfigError, match=r"capabilities\.restricted_membership"):
        load_profile(write(tmp_path, bad), ENV)


def test_a_dial_out_only_profile_needs_no_conference_uri(tmp_path: Path) -> None:
    """A conference that only calls its participants (a phone that merges its calls) has no
    factory URI and no pre-arranged one: the profile says how participants are reached."""
    text = GOOD.replace('factory_uri = "sips:conf-factory@conference.example.test"', "")
    text = text.replace(
        'creation_modes = ["dial-in-factory", "dial-out"]', 'creation_modes = ["dial-out"]'
    )
    text += '\n[dial_out]\nreach = "adapter"\n'
    target = load_profile(write(tmp_path, text), ENV)
    assert target.factory_uri == "" and target.dial_out_reach == "adapter"
    assert target.claims("dial-out") and not target.claims("dial-in-factory")
    with pytest.raises(ConfigError, match="or claim dial-out creation"):
        load_profile(write(tmp_path, text.replace('["dial-out"]', '["dial-in-prearranged"]')), ENV)
