"""`[accounts.<name>.flawed_certs.<flaw>]`: the client certificates from the target's CA that
mutual TLS must refuse (R2), in a target profile and back out of `profile_text`."""

from __future__ import annotations

from pathlib import Path

import pytest

from confsec.errors import ConfigError
from confsec.target.profile import load_profile
from confsec.target.profile_text import profile_text
from tests.target.test_profile import ENV, GOOD, write

FLAWED = """
[accounts.alice.flawed_certs.expired]
cert = "alice-expired.pem"
key = "alice-expired.key"

[accounts.alice.flawed_certs.server-auth-only]
cert = "alice-eku.pem"
key = "alice-eku.key"
"""


def _files(tmp_path: Path) -> None:
    for name in ("alice-expired.pem", "alice-expired.key", "alice-eku.pem", "alice-eku.key"):
        (tmp_path / name).write_text("x")


def test_flawed_certificates_are_read_per_account(tmp_path: Path) -> None:
    _files(tmp_path)
    target = load_profile(write(tmp_path, GOOD + FLAWED), ENV)
    assert target.accounts["alice"].flawed_certs == {
        "expired": (tmp_path / "alice-expired.pem", tmp_path / "alice-expired.key"),
        "server-auth-only": (tmp_path / "alice-eku.pem", tmp_path / "alice-eku.key"),
    }
    assert target.accounts["bob"].flawed_certs == {}
    assert "alice-expired" not in repr(target.accounts["alice"])
    # Written back by `confsec reference serve`, read again the same.
    text = profile_text(target, {"alice": "PW_ALICE", "bob": "PW_BOB"})
    again = load_profile(write(tmp_path, text), ENV)
    assert again.accounts["alice"].flawed_certs == target.accounts["alice"].flawed_certs


@pytest.mark.parametrize(
    ("old", "new", "key", "what"),
    [
        # The suite mints these itself: a profile that supplies one is told so by the list.
        ("flawed_certs.expired]", "flawed_certs.self-signed]", "self-signed", "unknown key"),
        ('cert = "alice-expired.pem"', 'cert = "nope.pem"', "expired.cert", "no such file"),
        ('key = "alice-expired.key"\n', "", "expired.key", "missing"),
        ('key = "alice-eku.key"', 'key = "alice-eku.key"\npem = "x"', "server-auth-only.pem", ""),
    ],
)
def test_a_bad_flawed_certificate_names_the_key(
    tmp_path: Path, old: str, new: str, key: str, what: str
) -> None:
    _files(tmp_path)
    assert old in FLAWED
    path = write(tmp_path, GOOD + FLAWED.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_profile(path, ENV)
    assert str(err.value).startswith(f"{path}: accounts.alice.flawed_certs.{key}")
    assert what in str(err.value)
