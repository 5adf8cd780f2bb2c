"""A background asyncio loop that the (synchronous) pytest-bdd steps drive.

Participants live on this loop between steps, so their sockets keep receiving media while the
test thread moves from one step to the next. Every call carries a deadline: a hung system under
test turns into `PeerTimeout` (an inconclusive verdict unless a step judges otherwise), never into
a hung suite.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from confsec.errors import PeerTimeout
from confsec.runtime.punctuality import Punctuality

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, with a synchronous `run()` for steps."""

    def __init__(self, name: str = "confsec-loop"):
        self.loop = asyncio.new_event_loop()
        self.punctuality = Punctuality(self.loop)
        """How late this loop runs (`start()`ed by the suite's fixture, not by the reference)."""
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0, what: str = "") -> T:
        """Run `coro` on the loop and wait for it; cancel it and raise PeerTimeout on deadline."""
        fut = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop)
        try:
            return fut.result(timeout + 5.0)
        except TimeoutError as exc:
            fut.cancel()
            raise PeerTimeout(
                f"{what or getattr(coro, '__qualname__', 'operation')} did not complete within "
                f"{timeout:g} s"
            ) from exc

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.punctuality.stop)

        async def _drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(_drain(), self.loop).result(5.0)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()
