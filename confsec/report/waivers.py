"""Waivers: accepted deviations, each with a justification and an expiry date (InSpec style).

A waiver names a scenario (its name as in the Gherkin, outline examples included) or a whole
requirement. A failed scenario it covers becomes `waived` and no longer fails the run, and the
justification travels with it into every report. Once past its expiry date a waiver no longer
applies and the reports say it expired: an accepted risk has to be accepted again, on purpose.
The file is checked completely before anything runs; any mistake is a configuration error.

```toml
[[waiver]]
requirement = "R3"                     # or: scenario = "A null cipher offer is refused"
justification = "vendor ticket 1234: null cipher kept for lab interop until the fix"
expires = 2026-12-31                   # a TOML date; the waiver applies through that day
```
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confsec.errors import ConfigError
from confsec.report.verdicts import Verdict, combine
from confsec.requirements import BY_ID

_KEYS = {"requirement", "scenario", "justification", "expires"}


@dataclass(frozen=True)
class Waiver:
    requirement: str | None
    scenario: str | None
    justification: str
    expires: dt.date

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def covers(self, req_id: str, scenario: str) -> bool:
        if self.requirement is not None and self.requirement != req_id:
            return False
        return self.scenario is None or self.scenario == scenario

    def as_dict(self, today: dt.date) -> dict[str, Any]:
        return {
            "requirement": self.requirement,
            "scenario": self.scenario,
            "justification": self.justification,
            "expires": self.expires.isoformat(),
            "status": "expired" if self.expired(today) else "active",
        }


def load_waivers(path: str | Path) -> list[Waiver]:
    """Parse and validate a waiver file; every problem is a `ConfigError` naming the entry."""
    file = Path(path)
    try:
        doc = tomllib.loads(file.read_text())
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the waiver file: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"waiver"}
    if unknown:
        raise ConfigError(f"{file}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    entries = doc.get("waiver", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{file}: `waiver` must be an array of tables ([[waiver]])")
    waivers = []
    for i, entry in enumerate(entries, start=1):
        where = f"{file}: waiver #{i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table")
        extra = set(entry) - _KEYS
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        req, scen = entry.get("requirement"), entry.get("scenario")
        if req is None and scen is None:
            raise ConfigError(f"{where}: needs `requirement` or `scenario`")
        if req is not None and (not isinstance(req, str) or req.upper() not in BY_ID):
            raise ConfigError(f"{where}: requirement {req!r} is not one of R1-R8, O1-O7")
        if scen is not None and (not isinstance(scen, str) or not scen.strip()):
            raise ConfigError(f"{where}: scenario must be a non-empty string")
        just = entry.get("justification")
        if not isinstance(just, str) or not just.strip():
            raise ConfigError(f"{where}: needs a non-empty `justification`")
        expires = entry.get("expires")
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        if not isinstance(expires, dt.date):
            raise ConfigError(f"{where}: `expires` must be a TOML date such as 2026-12-31")
        waivers.append(Waiver(req.upper() if req else None, scen, just.strip(), expires))
    return waivers


def apply_waivers(doc: dict[str, Any], waivers: list[Waiver], today: dt.date) -> dict[str, Any]:
    """Turn covered failures into `waived` in a verdicts document, in place; return it.

    Only `fail` is waivable: an error or inconclusive verdict means the suite could not judge,
    and a waiver is an accepted deviation, not an accepted blind spot.
    """
    doc["waivers"] = [w.as_dict(today) for w in waivers]
    for req in doc["requirements"]:
        for s in req["scenarios"]:
            if s["verdict"] != str(Verdict.FAIL):
                continue
            for w in waivers:
                if not w.covers(req["id"], s["name"]):
                    continue
                if w.expired(today):
                    s["waiver_expired"] = (
                        f"waiver expired on {w.expires.isoformat()}: {w.justification}"
                    )
                    continue
                s["verdict"] = str(Verdict.WAIVED)
                s["waived_as_of"] = "fail"
                s["justification"] = w.justification
                s["waiver_expires"] = w.expires.isoformat()
                break
        if req["scenarios"]:
            req["verdict"] = str(combine(Verdict(s["verdict"]) for s in req["scenarios"]))
    counts: dict[str, int] = {}
    for r in doc["requirements"]:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    doc["summary"] = counts
    return doc
