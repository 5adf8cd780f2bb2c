"""An immutable, ordered SIP header list with case-insensitive, compact-form-aware lookups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import overload

from confsec.errors import LocalProtocolError

from ._errors import SipParseError
from ._grammar import split_outside

__all__ = ["COMPACT_FORMS", "LIST_HEADERS", "Headers", "header_key"]

#: Compact header names (RFC 3261 §7.3.3 and the IANA SIP header registry) -> full names.
COMPACT_FORMS: Mapping[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_COMPACT_KEYS = {k: v.lower() for k, v in COMPACT_FORMS.items()}

#: Headers whose grammar is `value *(COMMA value)`, so that one field line may carry several
#: values (lower-case full names). Authorization, WWW-Authenticate, Proxy-Authenticate,
#: Proxy-Authorization, Date, Subject and the like are deliberately absent: their values contain
#: commas that do not separate values.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "accept-resource-priority",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-associated-uri",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "recv-info",
        "reject-contact",
        "request-disposition",
        "require",
        "resource-priority",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-cased, compact forms expanded (`I` -> `call-id`)."""
    low = name.lower()
    return _COMPACT_KEYS.get(low, low)


def _split_values(key: str, value: str) -> list[str]:
    """Split one field value into its list elements when the header is a list header.

    Empty elements are dropped, so an empty `Allow:` has no values.

    A value whose quotes or angle brackets do not balance is returned whole rather than
    raising: a lookup should not fail, and parsing that value later reports the defect.
    """
    if key not in LIST_HEADERS:
        return [value]
    if "," not in value:
        return [value] if value else []
    try:
        pieces = split_outside(value, ",")
    except SipParseError:
        return [value]
    return [p for _, piece in pieces if (p := piece.strip(" \t"))]


class Headers(Sequence[tuple[str, str]]):
    """Header fields in the order received, names kept as written.

    Immutable so that a parsed message can be shared between a transaction, a dialog and a
    report without anyone editing the evidence; `with_`, `add` and `without` return new objects.
    `name in headers` tests for a header name (compact-form aware); a `(name, value)` tuple is
    tested for as a sequence item.
    """

    __slots__ = ("_items",)
    _items: tuple[tuple[str, str], ...]

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | Headers = ()) -> None:
        if isinstance(items, Headers):
            self._items = items._items
            return
        if isinstance(items, Mapping):
            items = items.items()
        out: list[tuple[str, str]] = []
        for item in items:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise LocalProtocolError(f"header must be a (name, value) pair: {item!r}") from None
            if not isinstance(name, str) or not isinstance(value, str):
                raise LocalProtocolError(f"header name and value must be str: {item!r}")
            out.append((name, value))
        self._items = tuple(out)

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...]) -> Headers:
        """Wrap items the parser already checked, skipping the per-item checks (hot path)."""
        self = cls.__new__(cls)
        self._items = items
        return self

    # -- Sequence -------------------------------------------------------------------------
    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> Headers: ...
    def __getitem__(self, index: int | slice) -> tuple[str, str] | Headers:
        if isinstance(index, slice):
            return Headers._trusted(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            key = header_key(item)
            return any(header_key(n) == key for n, _ in self._items)
        return item in self._items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        if isinstance(other, (list, tuple)):
            return list(self._items) == [tuple(x) for x in other]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    # -- lookups --------------------------------------------------------------------------
    def fields(self, name: str) -> list[tuple[str, str]]:
        """Every field line of that header, unsplit, as `(name, value)` in order."""
        key = header_key(name)
        return [(n, v) for n, v in self._items if header_key(n) == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of that header (for list headers, the first list element).

        `default` when the header is absent; "" when it is present but empty (`Allow:`).
        """
        key = header_key(name)
        present = False
        for n, v in self._items:
            if header_key(n) == key:
                if key not in LIST_HEADERS:
                    return v
                present = True
                values = _split_values(key, v)
                if values:
                    return values[0]
        return "" if present else default

    def get_all(self, name: str) -> list[str]:
        """Every value of that header, in order; list headers are split on top-level commas."""
        key = header_key(name)
        out: list[str] = []
        for n, v in self._items:
            if header_key(n) == key:
                out.extend(_split_values(key, v))
        return out

    # -- edits (each returns a new Headers) -----------------------------------------------
    def with_(self, name: str, value: str) -> Headers:
        """Replace every field of that header by one `name: value` at the first one's place."""
        key = header_key(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if header_key(n) == key:
                if not placed:
                    out.append((name, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((name, value))
        return Headers(out)

    def add(self, name: str, value: str, *, first: bool = False) -> Headers:
        """Append a field (or put it before every other field with `first=True`, as a proxy
        does with its Via)."""
        if first:
            return Headers([(name, value), *self._items])
        return Headers([*self._items, (name, value)])

    def without(self, name: str) -> Headers:
        """Drop every field of that header (compact form included)."""
        key = header_key(name)
        return Headers._trusted(tuple((n, v) for n, v in self._items if header_key(n) != key))
