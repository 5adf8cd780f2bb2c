"""Operator-action adapters: a missing or failing adapter is inconclusive, never a failure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from confsec.errors import Inconclusive
from confsec.target.adapters import perform
from confsec.target.model import AdapterSpec, Target

CALLS: list[dict[str, object]] = []


def record(**params: object) -> str:
    CALLS.append(params)
    return "added"


def target(**adapters: AdapterSpec) -> Target:
    return Target(
        "t",
        "example.test",
        "127.0.0.1",
        5061,
        "sips:f@example.test",
        Path("/x"),
        {},
        adapters=dict(adapters),
    )


def test_a_missing_adapter_is_inconclusive() -> None:
    with pytest.raises(Inconclusive, match=r"no adapter for the operator action 'add-participant'"):
        perform(target(), "add-participant", participant="carol")


def test_a_command_gets_the_parameters_in_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = AdapterSpec(
        "add-participant", command=f'printf %s "$CONFSEC_PARTICIPANT" > {out}', timeout=5
    )
    perform(target(**{"add-participant": spec}), "add-participant", participant="carol; rm -rf /")
    assert out.read_text() == "carol; rm -rf /"  # a value, never shell syntax


@pytest.mark.parametrize(
    ("command", "match"), [("exit 3", "failed \\(exit 3\\)"), ("sleep 5", "within 0.3 s")]
)
def test_a_failing_or_slow_command_is_inconclusive(command: str, match: str) -> None:
    spec = AdapterSpec("start-conference", command=command, timeout=0.3)
    with pytest.raises(Inconclusive, match=match):
        perform(target(**{"start-conference": spec}), "start-conference")


def test_an_entry_point_is_called_with_keyword_arguments() -> None:
    spec = AdapterSpec("add-participant", entry_point=f"{__name__}:record", timeout=5)
    result = perform(target(**{"add-participant": spec}), "add-participant", participant="dave")
    assert result.output == "added" and CALLS[-1] == {"participant": "dave"}
    bad = dataclasses.replace(spec, entry_point="no_such_module:f")
    with pytest.raises(Inconclusive, match="cannot be loaded"):
        perform(target(**{"add-participant": bad}), "add-participant")
