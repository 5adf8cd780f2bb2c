"""The run's secrets: inventory in the evidence bundle, and a scanner for report artefacts.

The reports must never carry a password, an SDES key, a private key or a TLS secret. Proving it
needs the list of every secret the run used; the suite knows them only at run time (passwords and
PKI are made fresh per run), so the run writes them into the access-controlled bundle
(`secrets/*.json`, `scenarios/*/srtp-keys.json`, the TLS key logs) and `scan()` looks for each,
in its usual encodings, in every file of a report directory.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MIN_LEN = 8  # shorter "secrets" would match by chance


@dataclass(frozen=True)
class Secret:
    kind: str
    """'password', 'sdes key', 'private key', 'tls secret', ... (what a finding names)."""
    value: bytes


def write_inventory(
    bundle: Path, name: str, passwords: Iterable[str], key_files: Iterable[Path]
) -> None:
    """Record a target's passwords and private keys in the bundle (mode 0600)."""
    out = bundle / "secrets"
    out.mkdir(parents=True, exist_ok=True)
    keys = []
    for path in key_files:
        try:
            keys.append(Path(path).read_text())
        except OSError:
            continue
    doc = {"passwords": sorted(set(passwords)), "private_keys": keys}
    path = out / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    path.chmod(0o600)


def _b64_prefix(value: bytes) -> bytes:
    """The part of base64(value) that does not depend on what follows `value`: without the
    padding and the last two characters, whose bits may mix with the next bytes."""
    return base64.b64encode(value).rstrip(b"=")[:-2]


def key_spellings(key: bytes, salt: bytes) -> list[tuple[str, bytes]]:
    """How an SRTP master key and salt can be written down, each with a name for a finding.

    The one place that knows it: the report scanner (`load_inventory`) and the suite's search
    of what a target sends (confsec.behaviour.key_leaks) both look for exactly these. The SDES
    form is base64(key || salt) (RFC 4568 6.1, `inline:`); base64 is cut to the characters
    that depend on the value alone, so it is found inside a longer base64 run too.
    """
    return [
        ("base64 of key||salt (the SDES inline form)", _b64_prefix(key + salt)),
        ("base64 of the key", _b64_prefix(key)),
        ("base64 of the salt", _b64_prefix(salt)),
        ("hex of the key", key.hex().encode()),
        ("hex of the key", key.hex().upper().encode()),
        ("hex of the salt", salt.hex().encode()),
        ("hex of the salt", salt.hex().upper().encode()),
        ("the raw key", bytes(key)),
        ("the raw salt", bytes(salt)),
    ]


def _pem_lines(pem: str) -> list[bytes]:
    return [
        line.strip().encode()
        for line in pem.splitlines()
        if line.strip() and not line.startswith("-----") and len(line.strip()) >= 32
    ]


def load_inventory(bundle: Path) -> list[Secret]:
    """Every secret the run recorded in `bundle`, in the encodings a leak would take."""
    found: dict[bytes, str] = {}

    def add(kind: str, value: bytes) -> None:
        if len(value) >= MIN_LEN:
            found.setdefault(value, kind)

    for path in sorted(bundle.glob("secrets/*.json")):
        doc = json.loads(path.read_text())
        for pw in doc.get("passwords", []):
            add("password", pw.encode())
        for pem in doc.get("private_keys", []):
            for line in _pem_lines(pem):
                add("private key", line)
    for path in sorted(bundle.glob("scenarios/*/srtp-keys.json")):
        for row in json.loads(path.read_text()):
            add("sdes key", row["inline"].encode())
            for _, spelling in key_spellings(bytes.fromhex(row["key"]), bytes.fromhex(row["salt"])):
                add("sdes key", spelling)
    for path in sorted(bundle.glob("*keylog*")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and not line.startswith("#"):
                add("tls secret", parts[2].lower().encode())
                add("tls secret", parts[2].upper().encode())
    for path in sorted(bundle.glob("*.key.pem")):
        for line in _pem_lines(path.read_text()):
            add("private key", line)
    return [Secret(kind, value) for value, kind in found.items()]


# A base64 run long enough to hide a secret: the one-file Allure report carries every result
# and attachment as base64 JSON (`d("data/attachments/...","eyJ...")`), out of reach of a
# plain byte search.
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")
_DECODE_DEPTH = 2  # an attachment inside base64 JSON may itself hold base64


def decoded_views(data: bytes, depth: int = _DECODE_DEPTH) -> list[bytes]:
    """`data` and what every base64 run in it decodes to, `depth` levels down."""
    views = [data]
    if depth == 0:
        return views
    for m in _BASE64_RUN.finditer(data):
        run = m.group()
        try:
            decoded = base64.b64decode(run + b"=" * (-len(run) % 4))
        except ValueError:
            continue
        views += decoded_views(decoded, depth - 1)
    return views


_GRAM = 6
"""Length of the pieces the scan looks up. A secret of at least 2 * _GRAM - 1 bytes (every
secret the inventory holds is longer) covers a whole piece at some multiple of _GRAM in any text
it occurs in, so the scan reads only every _GRAM-th position."""


def scan(root: Path, secrets: list[Secret]) -> list[tuple[Path, str]]:
    """(file, kind of secret) for every secret found in a file under `root`; empty is good.

    Each file is searched as it is and as its base64 runs decode. A whole run has tens of
    thousands of secrets (every SDES key in four spellings, every TLS secret) over a thousand
    report files: one search per secret per file took two minutes, so the secrets are indexed
    by their pieces and each file is read once (`_find_all`).
    """
    index: dict[bytes, list[tuple[int, Secret]]] = {}
    short: list[Secret] = []
    for s in secrets:
        if len(s.value) < 2 * _GRAM - 1:
            short.append(s)
            continue
        for offset in range(_GRAM):
            index.setdefault(s.value[offset : offset + _GRAM], []).append((offset, s))
    hits: list[tuple[Path, str]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = b"\0".join(decoded_views(path.read_bytes()))
        found = _find_all(text, index) | {s for s in short if text.find(s.value) >= 0}
        if found:  # in the inventory's order, as before
            hits += [(path, s.kind) for s in secrets if s in found]
    return hits


def _find_all(text: bytes, index: dict[bytes, list[tuple[int, Secret]]]) -> set[Secret]:
    """The indexed secrets in `text`: each piece at a multiple of _GRAM that starts some
    secret's piece is checked against that secret where it would begin."""
    found: set[Secret] = set()
    get = index.get
    for p in range(0, len(text) - _GRAM + 1, _GRAM):
        candidates = get(text[p : p + _GRAM])
        if candidates:
            for offset, s in candidates:
                start = p - offset
                if start >= 0 and text.startswith(s.value, start):
                    found.add(s)
    return found
