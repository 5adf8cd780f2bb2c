"""Waivers in Allure: a waived scenario's result says so before the HTML is built.

allure-pytest-bdd writes results while the scenarios run; waivers are applied afterwards, so
`mark_waived` edits the result files of waived scenarios. The status stays `failed` (the
deviation is real) but is flagged `known` and `muted`, tagged `waived`, and the message leads
with the justification and expiry, so nobody reads a waived failure as a new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _display_name(s: dict[str, Any]) -> str:
    """An outline's title with its example values, as the result is named (the plugin sets it
    with `allure.dynamic.title`; `title` in verdicts.json)."""
    if s.get("title"):
        return str(s["title"])
    name = s["name"]
    for key, value in s.get("params", {}).items():
        name = name.replace(f"<{key}>", str(value))
    return name


def _key(name: str, params: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted((str(k), str(v)) for k, v in params.items()))


def mark_waived(results: Path, doc: dict[str, Any]) -> int:
    """Flag the Allure results of waived scenarios; return how many result files changed."""
    verdicts: dict[tuple, list[dict[str, Any]]] = {}
    for req in doc["requirements"]:
        for s in req["scenarios"]:
            verdicts.setdefault(_key(_display_name(s), s.get("params", {})), []).append(s)
    waived = {
        k: rows[0] for k, rows in verdicts.items() if {r["verdict"] for r in rows} == {"waived"}
    }
    if not waived or not results.is_dir():
        return 0
    changed = 0
    for path in results.glob("*-result.json"):
        result = json.loads(path.read_text())
        params = {p["name"]: p["value"] for p in result.get("parameters", [])}
        s = waived.get(_key(result.get("name", ""), params))
        if s is None:
            continue
        details = result.setdefault("statusDetails", {})
        note = f"Waived until {s.get('waiver_expires')}: {s.get('justification', '')}"
        details["message"] = f"{note}\n\n{details.get('message', '')}".strip()
        details["known"] = details["muted"] = True
        result.setdefault("labels", []).append({"name": "tag", "value": "waived"})
        path.write_text(json.dumps(result))
        changed += 1
    return changed
