"""The order the project's tests run in under pytest-xdist: the long producers first, their
readers last (loaded by `scripts/test` with `-p tests.ordering`).

Most of the test time is a few end-to-end runs of the whole suite, two to three minutes each,
whose results several tests read (tests/once.py). In file order they started late and set the
length of the run: a worker finished its share while the other was still in a whole-suite run.
A reader that a worker picks up while the run it reads is still being produced holds that
worker until the run is done. So: producers first, longest first, so that they start at once
and the other worker takes the rest meanwhile; then every other test in file order; the readers
of a shared run last.
"""

from __future__ import annotations

import pytest

#: Tests that produce a shared whole-suite run (or are one), longest first.
PRODUCERS = (
    "tests/test_self_validation.py::test_compliant_reference_passes[sdes]",
    "tests/hostile/test_hostile_all_requirements.py::test_nothing_passes_on_nothing[refuse-all]",
    "tests/test_self_validation.py::test_compliant_reference_passes[dtls-srtp]",
)
#: Fixtures that read the shared compliant run (tests/cli_runner.py `compliant_run`).
READER_FIXTURES = frozenset({"compliant"})
#: Other readers of a shared run a producer makes (node ids, or a module's prefix).
READERS = (
    "tests/target/test_reference_profile.py::test_run_through_a_profile_gives_the_embedded_"
    "verdicts[compliant]",
    "tests/hostile/test_hostile_all_requirements.py::",
)


def rank(item: pytest.Item) -> tuple[int, int]:
    if item.nodeid in PRODUCERS:
        return (0, PRODUCERS.index(item.nodeid))
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.nodeid.startswith(READERS) or fixtures & READER_FIXTURES:
        return (2, 0)
    return (1, 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # sort() is stable: within a rank, tests keep their file order (and their module fixtures).
    items.sort(key=rank)
