"""The reference deployment in a child process of its own, for the benchmarks.

A benchmark that measures the suite and the reference together needs them on separate cores
and needs each side's CPU time: the child runs the reference's loop, sends back its `Target`,
then answers requests on the pipe from a thread of its own (so a snapshot is not delayed by the
busy loop) until it is told "stop".
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import resource
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

Handler = Callable[[Any, Any, asyncio.AbstractEventLoop], Any]
"""`handle(message, deployment, loop)` -> the reply to send back."""


def cpu() -> float:
    """CPU seconds (user + system) of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_reference(conn: Connection, workdir: str, users: list[str], handle: Handler) -> None:
    """Child: run the reference, send its Target, answer every message with `handle` until
    "stop"."""
    from confsec.pki import TestPki
    from confsec.reference.deployment import DOMAIN, ReferenceConfig, ReferenceDeployment

    pki = TestPki.create(Path(workdir) / "pki", DOMAIN, users)
    config = ReferenceConfig(
        users=tuple(users), passwords={u: secrets.token_urlsafe(12) for u in users}
    )
    deployment = ReferenceDeployment(pki, config)

    def answer(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        while (msg := conn.recv()) != "stop":
            conn.send(handle(msg, deployment, loop))
        loop.call_soon_threadsafe(stop.set)

    async def main() -> None:
        await deployment.start()
        conn.send(deployment.target())
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        threading.Thread(target=answer, args=(loop, stop), daemon=True).start()
        await stop.wait()
        await deployment.stop()

    asyncio.run(main())


@contextmanager
def reference_in_child(
    entry: Callable[[Connection, str, list[str]], None], workdir: str, users: list[str]
) -> Iterator[tuple[Connection, Any, int]]:
    """Start `entry` (a module-level function that calls `run_reference`) in a spawned child;
    yield the pipe, the reference's `Target` and the child's pid; stop the child afterwards."""
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=entry, args=(child, workdir, users), daemon=True)
    proc.start()
    try:
        target = parent.recv()
        yield parent, target, proc.pid or 0
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
