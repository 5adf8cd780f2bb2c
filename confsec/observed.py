"""What a check observed: the evidence a verdict rests on.

Checks return `Evidence` and steps hand it to the `observed` fixture; the verdict layer
(`confsec.report`) turns a pass without evidence into inconclusive. It lives at the bottom of the
package so that the checks, which sit below the reports, can build it without importing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Evidence:
    """What a check observed: counts by what was counted, and the controls that passed.

    A pass must rest on an observation, so every check returns one of these and its step
    records it (`confsec.report.plugin.record_observation`); the verdict layer turns a pass whose
    evidence is empty (no count above zero) into inconclusive. Counts of findings that are zero
    ("0 shared key streams") are kept: they say what was looked for and not found.
    """

    counts: Mapping[str, int] = field(default_factory=dict)
    controls: tuple[str, ...] = ()
    """Positive controls that passed before a negative check counted ("bob admitted with his
    own certificate"): what shows the target was able to do the right thing."""

    @classmethod
    def of(cls, *controls: str, **counts: int) -> Evidence:
        """`Evidence.of(packets=312, streams=4)`; keyword underscores read as spaces."""
        return cls({k.replace("_", " "): int(v) for k, v in counts.items()}, tuple(controls))

    def __bool__(self) -> bool:
        return any(v > 0 for v in self.counts.values())

    def __add__(self, other: Evidence) -> Evidence:
        counts = dict(self.counts)
        for k, v in other.counts.items():
            counts[k] = counts.get(k, 0) + v
        return Evidence(
            counts, self.controls + tuple(c for c in other.controls if c not in self.controls)
        )

    def summary(self) -> str:
        """'4 streams, 312 packets, 0 shared key streams; controls: ...'."""
        text = ", ".join(f"{v} {k}" for k, v in self.counts.items()) or "nothing observed"
        if self.controls:
            text += "; controls: " + "; ".join(self.controls)
        return text

    def to_json(self) -> dict[str, object]:
        return {"counts": dict(self.counts), "controls": list(self.controls)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Evidence:
        counts = data.get("counts") or {}
        controls = data.get("controls") or []
        return cls(
            {str(k): int(v) for k, v in counts.items()},  # type: ignore[union-attr]
            tuple(str(c) for c in controls),  # type: ignore[union-attr]
        )


Observe = Callable[[Evidence], Evidence]
"""The type of the `observed` fixture: a step hands it what its check observed."""
