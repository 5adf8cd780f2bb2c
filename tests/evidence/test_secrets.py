"""The report scanner finds a secret however a report file wraps it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from confsec.evidence.secrets import Secret, scan

SECRET = Secret("sdes key", b"WVNfdGhpc19pc19hX2tleV9vZl8zMA")


def write(root: Path, name: str, data: bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def allure_one_file(attachment: bytes) -> bytes:
    """The shape of Allure 3's single-file report: base64 JSON and attachments in script calls."""
    result = json.dumps({"name": "scenario", "attachments": ["a1.txt"]}).encode()
    b64 = base64.b64encode
    return (
        b'<script>d("data/test-results/1.json","' + b64(result) + b'");'
        b'd("data/attachments/a1.txt","' + b64(attachment) + b'");</script>'
    )


def test_a_plain_secret_is_found(tmp_path: Path) -> None:
    path = write(tmp_path, "junit.xml", b"<x>a=crypto:1 inline:" + SECRET.value + b"</x>")
    assert scan(tmp_path, [SECRET]) == [(path, "sdes key")]


def test_a_secret_in_a_base64_attachment_of_the_one_file_allure_report_is_found(
    tmp_path: Path,
) -> None:
    ladder = b"INVITE sips:conf@x SIP/2.0\r\n\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
    path = write(tmp_path, "allure-report/index.html", allure_one_file(ladder + SECRET.value))
    assert SECRET.value not in path.read_bytes()
    assert scan(tmp_path, [SECRET]) == [(path, "sdes key")]


def test_base64_inside_base64_is_decoded(tmp_path: Path) -> None:
    inner = json.dumps({"blob": base64.b64encode(b"key=" + SECRET.value).decode()}).encode()
    write(tmp_path, "index.html", allure_one_file(inner))
    assert [kind for _, kind in scan(tmp_path, [SECRET])] == ["sdes key"]


def test_a_clean_report_has_no_hits(tmp_path: Path) -> None:
    write(tmp_path, "allure-report/index.html", allure_one_file(b"a=crypto:1 inline:[redacted]"))
    write(tmp_path, "verdicts.json", b'{"R3": "pass"}')
    assert scan(tmp_path, [SECRET]) == []
