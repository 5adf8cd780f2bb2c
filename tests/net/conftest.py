"""Shared fixtures for the asyncio SIP layer tests: one PKI per session, TLS contexts, timers.

pytest-asyncio is not used: each test is a plain function that calls `run(coro)`, which runs
the coroutine under `asyncio.run` with a guard timeout so that a bug fails fast instead of
hanging until pytest-timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from confsec.net import tls
from confsec.net._txn_fsm import Timers
from confsec.pki import TestPki

T = TypeVar("T")

DOMAIN = "conference.example.test"
FAST = Timers(t1=0.05, t2=0.4, t4=0.5, d=0.5, trying=0.05)
"""Small timers: Timer B/F = 64*T1 = 3.2 s, so a lost message fails a test quickly."""


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run `coro` in a fresh event loop, failing after `timeout` seconds."""

    async def guarded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(guarded())


@pytest.fixture(name="run")
def run_fixture() -> Callable[..., Any]:
    """`run(coro, timeout=30.0)`: the helper above, as a fixture (tests/net is no package)."""
    return run


@pytest.fixture
def fast() -> Timers:
    """The small timers of `FAST`."""
    return FAST


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"), DOMAIN, ["alice", "bob"])


def _client_context(ca: Path) -> ssl.SSLContext:
    return tls.client_context(ca)


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    return tls.server_context(cert, key)


@pytest.fixture(scope="session")
def client_ssl(pki: TestPki) -> Callable[[], ssl.SSLContext]:
    """Factory of client contexts that trust the test CA (one per UA, as in real use)."""
    return lambda: _client_context(pki.ca_cert)


@pytest.fixture(scope="session")
def server_ssl(pki: TestPki) -> Callable[..., ssl.SSLContext]:
    """Factory of server contexts; `server_ssl("other-domain")` gives a wrong-domain server."""

    def make(name: str = "service") -> ssl.SSLContext:
        pair = pki.server(name)
        return _server_context(pair.cert, pair.key)

    return make
