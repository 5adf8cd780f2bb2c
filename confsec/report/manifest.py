"""Integrity of reports and evidence: a SHA-256 manifest signed with Ed25519.

`MANIFEST.json` lists every file of a directory with its digest; `MANIFEST.sig` is the Ed25519
signature of those exact bytes. `verify()` names every file that changed, vanished or appeared,
and a broken signature names the manifest itself. The public key sits in the manifest so that a
directory checks on its own; an auditor who must know *who* signed pins the key
(`confsec verify DIR --public-key KEY.pem`), since anyone can re-sign with a key of their own.
By default each run signs with a fresh key kept in the evidence bundle (never in reports/);
`--signing-key` uses a long-lived one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from confsec.errors import ConfigError

MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"


@dataclass(frozen=True)
class Problem:
    path: str
    what: str  # 'altered', 'missing', 'unlisted', 'bad signature', 'untrusted key', 'no manifest'

    def __str__(self) -> str:
        return f"{self.what}: {self.path}"


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at `path`, created (mode 0600) if the file does not exist."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not a usable PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: the signing key must be Ed25519")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _raw_public(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(directory: Path) -> dict[str, Path]:
    return {
        p.relative_to(directory).as_posix(): p
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, SIGNATURE)
    }


def sign(directory: Path, key: Ed25519PrivateKey) -> Path:
    """Write MANIFEST.json and MANIFEST.sig for every file now under `directory`."""
    doc = {
        "algorithm": "Ed25519",
        "digest": "sha256",
        "public_key": _raw_public(key.public_key()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {rel: _digest(p) for rel, p in _files(directory).items()},
    }
    data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    (directory / MANIFEST).write_bytes(data)
    (directory / SIGNATURE).write_bytes(base64.b64encode(key.sign(data)) + b"\n")
    return directory / MANIFEST


def verify(directory: Path, trusted: Ed25519PublicKey | None = None) -> list[Problem]:
    """Every problem with `directory` against its signed manifest; empty means intact."""
    mpath, spath = directory / MANIFEST, directory / SIGNATURE
    if not mpath.is_file() or not spath.is_file():
        return [Problem(MANIFEST if not mpath.is_file() else SIGNATURE, "no manifest")]
    data = mpath.read_bytes()
    try:
        doc = json.loads(data)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(doc["public_key"]))
        files: dict[str, str] = doc["files"]
    except (ValueError, KeyError, TypeError):
        return [Problem(MANIFEST, "altered")]
    problems: list[Problem] = []
    try:
        key.verify(base64.b64decode(spath.read_bytes().strip(), validate=True), data)
    except (InvalidSignature, ValueError):
        # Either the manifest or the signature changed; name the one that is now invalid.
        problems.append(Problem(f"{MANIFEST} or {SIGNATURE}", "bad signature"))
    if trusted is not None and _raw_public(trusted) != doc["public_key"]:
        problems.append(Problem(MANIFEST, "untrusted key"))
    present = _files(directory)
    for rel, digest in files.items():
        path = present.get(rel)
        if path is None:
            problems.append(Problem(rel, "missing"))
        elif _digest(path) != digest:
            problems.append(Problem(rel, "altered"))
    problems += [Problem(rel, "unlisted") for rel in present if rel not in files]
    return problems


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key")
    return key
