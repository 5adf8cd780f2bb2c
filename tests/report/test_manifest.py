"""The signed manifest names exactly the file that changed, went missing or appeared."""

from __future__ import annotations

from pathlib import Path

import pytest

from confsec.report import manifest


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "reports"
    (d / "evidence" / "s1").mkdir(parents=True)
    (d / "a.json").write_text('{"x": 1}\n')
    (d / "evidence" / "s1" / "slice.pcap").write_bytes(bytes(range(256)))
    key_path = tmp_path / "key.pem"
    manifest.sign(d, manifest.load_or_create_key(key_path))
    return d, key_path


def test_intact_directory_verifies(signed: tuple[Path, Path]) -> None:
    assert manifest.verify(signed[0]) == []


@pytest.mark.parametrize("name", ["a.json", "evidence/s1/slice.pcap"])
def test_flipped_byte_names_the_file(signed: tuple[Path, Path], name: str) -> None:
    path = signed[0] / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert [str(p) for p in manifest.verify(signed[0])] == [f"altered: {name}"]


@pytest.mark.parametrize("name", [manifest.MANIFEST, manifest.SIGNATURE])
def test_tampered_manifest_or_signature_is_named(signed: tuple[Path, Path], name: str) -> None:
    path = signed[0] / name
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    problems = " ".join(str(p) for p in manifest.verify(signed[0]))
    assert name in problems


def test_missing_and_unlisted_files(signed: tuple[Path, Path]) -> None:
    d = signed[0]
    (d / "a.json").unlink()
    (d / "new.txt").write_text("x")
    assert {str(p) for p in manifest.verify(d)} == {"missing: a.json", "unlisted: new.txt"}


def test_pinned_key_rejects_another_signer(signed: tuple[Path, Path], tmp_path: Path) -> None:
    d, _ = signed
    other = manifest.load_or_create_key(tmp_path / "other.pem")
    (tmp_path / "other.pub").write_bytes(manifest.public_pem(other))
    trusted = manifest.load_public_key(tmp_path / "other.pub")
    assert [str(p) for p in manifest.verify(d, trusted)] == [f"untrusted key: {manifest.MANIFEST}"]


def test_signing_key_is_private(signed: tuple[Path, Path]) -> None:
    assert signed[1].stat().st_mode & 0o077 == 0
