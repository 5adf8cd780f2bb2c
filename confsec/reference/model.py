"""The conferences of the reference focus, as the focus and its event package both see them.

The focus creates and ends conferences and admits and drops their legs; the event package
(`events.py`) reports the same conferences to subscribers and lets only their members subscribe.
Both work on the objects defined here, and the event package is handed a `ConferenceLookup`
rather than the focus, so it depends on what a conference is, not on who keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from confsec.net.dialog import Dialog


@dataclass
class Leg:
    """One participant's presence in a conference: one INVITE dialog with the focus."""

    leg_id: str
    user: str
    """The authenticated user name (never what From claims)."""
    dialog: Dialog | None = None


@dataclass
class Conference:
    conference_id: str
    uri: str
    creator: str
    secure: bool
    legs: dict[str, Leg] = field(default_factory=dict)
    held: bool = False
    """Started by an operator (operator.py): it lives on with no one in it, until ended."""
    members: frozenset[str] | None = None
    """The user names a members-only conference admits (the creator and those its creation
    INVITE listed, see members.py); None: every authenticated user may join."""


ConferenceLookup: TypeAlias = Callable[[str], Conference | None]
"""The conference a conference id (the user part of its URI) names, if it is in progress."""
