"""Fixtures the reference's own tests share: one embedded reference per module, and a
conference run against it per test (its own loop thread, closed after the test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.reference.deployment import EmbeddedReference
from confsec.runtime.loop import LoopThread


@pytest.fixture(scope="module")
def reference(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedReference]:
    ref = EmbeddedReference.start(tmp_path_factory.mktemp(f"ref-{request.module.__name__}"))
    yield ref
    ref.stop()


@pytest.fixture
def conf(reference: EmbeddedReference, tmp_path: Path) -> Iterator[ConferenceRun]:
    loop = LoopThread("test-reference")
    run = ConferenceRun(loop, reference.target, keylog=tmp_path / "keylog.txt")
    yield run
    run.close()
    loop.close()
