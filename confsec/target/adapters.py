"""Adapters for operator actions: the upper tester of a conformance suite.

Some steps cannot be driven over the protocol: "the operator adds carol to the conference",
"start the pre-arranged conference". A target profile names, per action, a shell command or a
Python entry point with a timeout (`[adapters.add-participant]`). The suite calls it and goes on.
A missing adapter, a failing one or one that overruns its timeout makes the scenario
*inconclusive*: the system under test was never asked, so nothing can be held against it.

Commands run through the shell with the action's parameters in `CONFSEC_<NAME>` environment
variables (never interpolated into the command line, so a participant name cannot inject shell
syntax). Entry points (`package.module:function`) are called with the parameters as keyword
arguments.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import os
import subprocess
from dataclasses import dataclass

from confsec.errors import Inconclusive
from confsec.target.model import AdapterSpec, Target

__all__ = ["AdapterResult", "perform"]


@dataclass(frozen=True)
class AdapterResult:
    """What the adapter reported: its output (a command's stdout, or a function's result)."""

    action: str
    output: str


def perform(target: Target, action: str, **params: object) -> AdapterResult:
    """Ask the target's adapter to perform `action`; Inconclusive when it cannot."""
    spec = target.adapters.get(action)
    if spec is None:
        raise Inconclusive(
            f"the target profile names no adapter for the operator action {action!r} "
            f"([adapters.{action}] with command or entry_point)"
        )
    if spec.command is not None:
        return _command(spec, params)
    return _entry_point(spec, params)


def _command(spec: AdapterSpec, params: dict[str, object]) -> AdapterResult:
    env = dict(os.environ)
    env.update({f"CONFSEC_{k.upper()}": str(v) for k, v in params.items()})
    env["CONFSEC_ACTION"] = spec.action
    try:
        proc = subprocess.run(
            spec.command or "",
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=spec.timeout,
        )
    except subprocess.TimeoutExpired:
        raise Inconclusive(
            f"the adapter for {spec.action!r} did not finish within {spec.timeout:g} s"
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise Inconclusive(
            f"the adapter for {spec.action!r} failed (exit {proc.returncode}): {tail[0][:200]}"
        )
    return AdapterResult(spec.action, proc.stdout)


def _entry_point(spec: AdapterSpec, params: dict[str, object]) -> AdapterResult:
    module_name, _, func_name = (spec.entry_point or "").partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise Inconclusive(f"the adapter {spec.entry_point!r} cannot be loaded: {exc}") from None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(func, **params)
    try:
        result = future.result(timeout=spec.timeout)
    except concurrent.futures.TimeoutError:
        raise Inconclusive(
            f"the adapter for {spec.action!r} did not finish within {spec.timeout:g} s"
        ) from None
    except Exception as exc:  # the vendor's code: any failure means "could not perform"
        raise Inconclusive(f"the adapter for {spec.action!r} failed: {exc!r}"[:300]) from None
    finally:
        pool.shutdown(wait=False)
    return AdapterResult(spec.action, "" if result is None else str(result))
