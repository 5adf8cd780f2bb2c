"""What a fuzz run of the reference counts: per entry point, the service checks, and what the
reference itself logged.

The verdict of a run is `FuzzReport.clean`: no input left the server hung or down, the others
were served after every batch, and the reference raised nothing it did not handle.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE_THREAD = "confsec-reference"
"""The name of `EmbeddedReference`'s loop thread: log records from it are the server's."""


@dataclass
class EntryStats:
    """What became of the inputs sent to one entry point."""

    name: str
    inputs: int = 0
    responses: Counter[str] = field(default_factory=Counter)
    """By class: '1xx'..'6xx' for SIP, 'HelloAck'/'Error'/... for BFCP, 'dropped'/'taken'
    (by the mixer's SRTP check, from its counters) for SRTP, 'none' when nothing came back."""
    closed: int = 0
    """Connections the server closed after an input."""
    refused: int = 0
    """Inputs that could not be sent because the server refused a new connection."""
    hangs: int = 0
    """Inputs after which a valid probe got no answer within the hang limit."""
    down: int = 0
    """Inputs after which a valid probe found the server gone (connection refused or closed)."""
    seconds: float = 0.0
    saved: list[Path] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


@dataclass
class FuzzReport:
    entries: dict[str, EntryStats]
    service_checks: int = 0
    service_failures: list[str] = field(default_factory=list)
    """'after <batch>: <what no longer worked>'."""
    exceptions: list[str] = field(default_factory=list)
    """Tracebacks on the reference's loop thread and calls of its loop exception handler."""
    errors: list[str] = field(default_factory=list)
    """ERROR log records of the reference without a traceback (e.g. a defect switch's crash)."""

    @property
    def clean(self) -> bool:
        return not (
            self.service_failures
            or self.exceptions
            or any(e.hangs or e.down or e.refused for e in self.entries.values())
        )

    def table(self) -> str:
        lines = [
            f"{'entry':<6}{'inputs':>8}{'closed':>8}{'refused':>8}{'hangs':>7}{'down':>6}"
            f"{'inputs/s':>10}  responses"
        ]
        for e in self.entries.values():
            classes = ", ".join(f"{k} {v}" for k, v in sorted(e.responses.items()))
            lines.append(
                f"{e.name:<6}{e.inputs:>8}{e.closed:>8}{e.refused:>8}{e.hangs:>7}{e.down:>6}"
                f"{e.rate:>10.0f}  {classes}"
            )
        lines.append(
            f"service checks {self.service_checks}, failed {len(self.service_failures)}; "
            f"reference exceptions {len(self.exceptions)}, error logs {len(self.errors)}"
        )
        lines += [f"  service: {f}" for f in self.service_failures[:10]]
        lines += [f"  exception: {x.splitlines()[0]}" for x in self.exceptions[:10]]
        return "\n".join(lines)


class ReferenceLog(logging.Handler):
    """Collects what the reference's loop thread logs at ERROR (tracebacks kept apart).

    The reference catches what a handler raises and logs it, so a parser bug shows up here, not
    as a dead server: the log is the only place such a bug is seen.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.exceptions: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName != REFERENCE_THREAD:
            return
        text = f"{record.name}: {record.getMessage()}"
        with self._lock:
            if record.exc_info and record.exc_info[0] is not None:
                exc = record.exc_info[1]
                trace = "".join(traceback.format_exception(*record.exc_info)[-6:])
                self.exceptions.append(f"{text}: {type(exc).__name__}: {exc}\n{trace}")
            else:
                self.errors.append(text)

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """The reference loop's exception handler: anything asyncio could not hand to anyone."""
        exc = context.get("exception")
        with self._lock:
            self.exceptions.append(f"asyncio: {context.get('message')}: {exc!r}")
