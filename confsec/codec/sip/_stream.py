"""Message framing on a byte stream (TCP, TLS), in the style of h11: feed bytes, pull messages."""

from __future__ import annotations

from ._errors import SipParseError
from ._message import Message
from ._parser import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_LINE_LENGTH,
    Head,
    build_message,
    find_head_end,
    parse_head,
)

__all__ = ["MAX_BODY_BYTES", "SipStream"]

MAX_BODY_BYTES = 1024 * 1024


class SipStream:
    """Frames SIP messages received on one stream connection.

    `feed()` the bytes as they arrive, then call `next_message()` until it returns None (more
    bytes needed). Content-Length is mandatory on a stream (RFC 3261 §18.3), since without it
    the end of the body cannot be known. CRLFs between messages are skipped: they are RFC 5626
    keep-alives (a CRLFCRLF ping, a CRLF pong); `keepalives` counts the pings so that the owner
    can answer with a pong. After any error the stream is poisoned: framing is lost, so every
    later call raises the same error and the connection should be closed. Error offsets count
    from the first byte ever fed.
    """

    def __init__(
        self,
        *,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_line_length: int = MAX_LINE_LENGTH,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_line_length = max_line_length
        self.max_headers = max_headers
        self.keepalives = 0
        self._buf = bytearray()
        self._consumed = 0  # bytes dropped from the front of _buf since the stream began
        self._scan = 0  # where the search for the end of the header section resumes
        self._lf_run = 0  # line feeds seen in the current run of keep-alive CRLFs
        self._head: tuple[Head, int, int] | None = None  # (head, body_start, content_length)
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned message."""
        return len(self._buf)

    def unfinished(self) -> bytes:
        """The received bytes of a message not yet complete (what a close would cut short)."""
        return bytes(self._buf).lstrip(b"\r\n")

    @property
    def poisoned(self) -> bool:
        """True once an error was raised: no further message can be framed."""
        return self._error is not None

    def feed(self, data: bytes) -> None:
        """Add received bytes (raises the earlier error if the stream is poisoned)."""
        if self._error is not None:
            raise self._error
        self._buf += data

    def next_message(self) -> Message | None:
        """The next complete message, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except SipParseError as exc:
            self._error = exc
            raise

    def _fail(self, reason: str, offset: int, status_hint: int = 400) -> SipParseError:
        return SipParseError(reason, offset=self._consumed + offset, status_hint=status_hint)

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self._consumed += count
        self._scan = max(0, self._scan - count)

    def _skip_keepalives(self) -> None:
        buf = self._buf
        i = 0
        n = len(buf)
        while i < n and buf[i] in b"\r\n":
            if buf[i] == 0x0A:
                self._lf_run += 1
                if self._lf_run == 2:
                    self.keepalives += 1
                    self._lf_run = 0
            i += 1
        if i:
            self._drop(i)

    def _next(self) -> Message | None:
        if self._head is None:
            self._skip_keepalives()
            buf = self._buf
            if not buf:
                return None
            self._lf_run = 0
            limit = self.max_header_bytes
            head_end, body_start = find_head_end(buf, max(0, self._scan - 2), limit + 3)
            if head_end == -1 or head_end > limit:
                if len(buf) > limit:
                    raise self._fail(f"header section larger than {limit} bytes", limit, 513)
                last_lf = buf.rfind(b"\n")
                if len(buf) - last_lf - 1 > self.max_line_length + 1:
                    raise self._fail(
                        f"line longer than {self.max_line_length} bytes", last_lf + 1, 513
                    )
                self._scan = len(buf)
                return None
            try:
                head = parse_head(
                    bytes(buf[:head_end]),
                    0,
                    head_end,
                    max_line_length=self.max_line_length,
                    max_headers=self.max_headers,
                )
            except SipParseError as exc:
                raise self._fail(exc.reason, exc.offset or 0, exc.status_hint) from None
            if head.content_length is None:
                raise self._fail("Content-Length is mandatory on a stream transport", 0)
            if head.content_length > self.max_body_bytes:
                raise self._fail(
                    f"body of {head.content_length} bytes exceeds the {self.max_body_bytes}"
                    " byte limit",
                    0,
                    413,
                )
            self._head = (head, body_start, head.content_length)
        head, body_start, length = self._head
        end = body_start + length
        if len(self._buf) < end:
            return None
        raw = bytes(self._buf[:end])
        self._head = None
        self._drop(end)
        self._scan = 0
        return build_message(head, raw[body_start:], raw)
