"""The trace of a user agent: every message it sent or received, with its `Flow` and time.

The suite draws SIP ladders from it and checks that a message travelled over TLS; tests of
crafted bytes, which have no transaction to wait on, wait on it for the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from confsec.codec.sip import Request, Response
from confsec.errors import PeerTimeout, RemoteProtocolError
from confsec.net.flow import Flow

TracePredicate = Callable[["TraceEntry"], bool]


@dataclass(frozen=True)
class TraceEntry:
    """One message the UA sent or received."""

    direction: Literal["sent", "received"]
    """'sent' or 'received'."""
    flow: Flow
    """Where it travelled (TLS details included)."""
    message: Request | Response | bytes
    """The message; raw bytes for crafted or unparseable data."""
    time: float
    """Wall-clock time (time.time()) for reports."""

    @property
    def summary(self) -> str:
        """One ladder line: 'INVITE sips:x' or '200 OK (INVITE)'."""
        msg = self.message
        if isinstance(msg, Request):
            return f"{msg.method} {msg.uri}"
        if isinstance(msg, Response):
            try:
                method = msg.cseq[1]
            except RemoteProtocolError:
                method = "?"
            return f"{msg.status} {msg.reason} ({method})"
        return f"<{len(msg)} raw bytes>"


class TraceRecorder:
    """Appends to `entries` (the user agent's `trace` list) and wakes who waits on it."""

    def __init__(self) -> None:
        self.entries: list[TraceEntry] = []
        """Every message sent or received, in order."""
        self._waiters: list[tuple[TracePredicate, asyncio.Future[TraceEntry]]] = []

    def record(
        self,
        direction: Literal["sent", "received"],
        flow: Flow,
        message: Request | Response | bytes,
    ) -> None:
        entry = TraceEntry(direction, flow, message, time.time())
        self.entries.append(entry)
        if self._waiters and direction == "received":
            for waiter in list(self._waiters):
                predicate, fut = waiter
                if fut.done():
                    self._waiters.remove(waiter)
                    continue
                try:
                    hit = predicate(entry)
                except Exception:
                    hit = False
                if hit:
                    fut.set_result(entry)
                    self._waiters.remove(waiter)

    async def wait_for(
        self, predicate: TracePredicate, timeout: float, since: int | None
    ) -> TraceEntry:
        """The next received entry matching `predicate`; with `since` (an index into
        `entries`), entries already received from there on count too. Raises PeerTimeout."""
        if since is not None:
            for entry in self.entries[since:]:
                if entry.direction == "received" and predicate(entry):
                    return entry
        fut: asyncio.Future[TraceEntry] = asyncio.get_running_loop().create_future()
        waiter = (predicate, fut)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError as exc:
            raise PeerTimeout(f"no matching message within {timeout} s") from exc
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def close(self) -> None:
        """Cancel every waiter (the user agent is closing)."""
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
