"""One expensive run shared by every pytest-xdist worker that needs it.

A module-scoped fixture runs once per worker, and xdist hands a module's tests to both workers:
the whole-suite runs some test modules read (the compliant `confsec run` of tests/test_cli.py,
the hostile runs of tests/hostile/test_hostile_all_requirements.py) ran twice, each on a core
the other needed. (`--dist loadgroup` does not help here: with pytest 9 its `xdist_group` marks
do not reach the scheduler.) `once()` runs the producer in the first worker that asks, under a
lock file in the directory all workers share; the others wait for it and read its result.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


def once(factory: pytest.TempPathFactory, name: str, produce: Callable[[Path], T]) -> T:
    """`produce(workdir)` once per test session; its (picklable) result for every caller.

    A producer that raises leaves no result: the next caller tries again, and gets its own
    error, as a module fixture would."""
    root = factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # basetemp/popen-gwN: the parent is the session's, shared
    work = root / f"once-{name}"
    result = work / "result.pickle"
    with open(root / f"once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if result.exists():
            return pickle.loads(result.read_bytes())
        work.mkdir(exist_ok=True)
        value = produce(work)
        result.write_bytes(pickle.dumps(value))
        return value
