"""Header values the user-agent modules build and read: lists of headers, overrides, the URI in
a Contact, fresh tags and branches.

They sit below the dialog core, the dialogs and the user agent, which all need them, so that
none of those has to import another for a helper.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from confsec.codec.sip import header_key
from confsec.net._txn_keys import MAGIC_COOKIE

HeaderList = Iterable[tuple[str, str]]
"""Headers as (name, value) pairs, in order: what callers pass to add or override headers."""


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag (48 random bits)."""
    return secrets.token_hex(6)


def name_addr(display: str | None, uri: str, tag: str | None) -> str:
    """A From/To value: `"display" <uri>;tag=tag`, each part only when given."""
    text = f'"{display}" <{uri}>' if display else f"<{uri}>"
    return f"{text};tag={tag}" if tag else text


def contact_uri(contact: str) -> str:
    """The URI inside a Contact/Route value (`"x" <sip:a@b>;expires=1` -> `sip:a@b`)."""
    start = contact.find("<")
    if start != -1:
        end = contact.find(">", start)
        return contact[start + 1 : end if end != -1 else None].strip()
    return contact.split(";", 1)[0].strip()


def merge_headers(base: HeaderList, extra: HeaderList) -> list[tuple[str, str]]:
    """`base` with every header named in `extra` replaced by `extra`'s values.

    This is how a caller overrides what the UA would put (From, Contact, Authorization...):
    the values it gives win, and a step can still craft odd messages.
    """
    extra = list(extra)
    if not extra:
        return list(base)
    override = {header_key(name) for name, _ in extra}
    return [(n, v) for n, v in base if header_key(n) not in override] + extra
