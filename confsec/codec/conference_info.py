"""Conference state documents, `application/conference-info+xml` (RFC 4575).

Sans-IO like the other codecs: bytes in, frozen dataclasses out, and back. Every document the
suite receives is validated against `schemas/conference-info.xsd` (written for confsec from
RFC 4575 section 5) before it is believed, because a check that reads identities out of a
malformed document would judge noise. The parser is hardened: no network, no entity expansion,
no DTD, so a hostile focus cannot make the suite fetch or expand anything.

Only what the checks need is modelled (conference entity, state, version, users with their
entity, state, display text, endpoints and media); the raw bytes are kept for the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from lxml import etree

from confsec.errors import RemoteProtocolError

__all__ = [
    "CONTENT_TYPE",
    "NS",
    "ConferenceInfo",
    "ConferenceInfoError",
    "Endpoint",
    "User",
    "apply_partial",
    "parse_conference_info",
]

NS = "urn:ietf:params:xml:ns:conference-info"
CONTENT_TYPE = "application/conference-info+xml"
STATES = ("full", "partial", "deleted")
_Q = f"{{{NS}}}"


class ConferenceInfoError(RemoteProtocolError):
    """A conference-info document that is not XML or does not validate against RFC 4575."""


@dataclass(frozen=True)
class Endpoint:
    """One `<endpoint>` of a user (RFC 4575 5.6.4)."""

    entity: str
    state: str = "full"
    status: str | None = None
    display_text: str | None = None
    media: tuple[tuple[str, str], ...] = ()
    """(id, type) of each `<media>`."""


@dataclass(frozen=True)
class User:
    """One `<user>` (RFC 4575 5.6): `entity` is the identity the focus vouches for."""

    entity: str
    state: str = "full"
    display_text: str | None = None
    roles: tuple[str, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class ConferenceInfo:
    """A `<conference-info>` document, full or partial."""

    entity: str
    version: int
    state: str = "full"
    display_text: str | None = None
    subject: str | None = None
    user_count: int | None = None
    active: bool | None = None
    users: tuple[User, ...] = ()
    raw: bytes | None = field(default=None, compare=False, repr=False)

    def to_bytes(self) -> bytes:
        """Serialise; the result validates against the schema (checked, it is cheap)."""
        root = etree.Element(
            _Q + "conference-info",
            nsmap={None: NS},
            entity=self.entity,
            state=self.state,
            version=str(self.version),
        )
        if self.display_text is not None or self.subject is not None:
            desc = etree.SubElement(root, _Q + "conference-description")
            _text(desc, "display-text", self.display_text)
            _text(desc, "subject", self.subject)
        if self.user_count is not None or self.active is not None:
            cs = etree.SubElement(root, _Q + "conference-state")
            _text(cs, "user-count", None if self.user_count is None else str(self.user_count))
            _text(cs, "active", None if self.active is None else str(self.active).lower())
        if self.users or self.state == "full":
            users = etree.SubElement(root, _Q + "users")
            for u in self.users:
                ue = etree.SubElement(users, _Q + "user", entity=u.entity, state=u.state)
                _text(ue, "display-text", u.display_text)
                if u.roles:
                    roles = etree.SubElement(ue, _Q + "roles")
                    for r in u.roles:
                        _text(roles, "entry", r)
                for ep in u.endpoints:
                    ee = etree.SubElement(ue, _Q + "endpoint", entity=ep.entity, state=ep.state)
                    _text(ee, "display-text", ep.display_text)
                    _text(ee, "status", ep.status)
                    for mid, mtype in ep.media:
                        me = etree.SubElement(ee, _Q + "media", id=mid)
                        _text(me, "type", mtype)
        data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        _validate(etree.fromstring(data, _parser()))
        return data


def _text(parent: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(parent, _Q + name).text = value


_SCHEMA: etree.XMLSchema | None = None


def _schema() -> etree.XMLSchema:
    global _SCHEMA
    if _SCHEMA is None:
        xsd = resources.files("confsec.codec").joinpath("schemas/conference-info.xsd")
        _SCHEMA = etree.XMLSchema(etree.fromstring(xsd.read_bytes(), _parser()))
    return _SCHEMA


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _validate(root: etree._Element) -> None:
    schema = _schema()
    try:
        valid = schema.validate(root)
    except etree.XMLSchemaValidateError as exc:
        raise ConferenceInfoError(f"conference-info cannot be validated: {exc}") from None
    if not valid:
        err = schema.error_log.last_error
        raise ConferenceInfoError(
            f"conference-info does not validate against RFC 4575: line {err.line}: {err.message}"
        )


def parse_conference_info(data: bytes) -> ConferenceInfo:
    """Parse and validate one document; `ConferenceInfoError` for anything RFC 4575 forbids."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise ConferenceInfoError(f"conference-info is not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise ConferenceInfoError("conference-info must not carry a DOCTYPE (no DTD, no entities)")
    if root.tag != _Q + "conference-info":
        raise ConferenceInfoError(f"root element is {root.tag}, not conference-info")
    _validate(root)
    desc = root.find(_Q + "conference-description")
    cs = root.find(_Q + "conference-state")
    users = []
    for ue in root.iterfind(f"{_Q}users/{_Q}user"):
        endpoints = tuple(
            Endpoint(
                ee.get("entity", ""),
                ee.get("state", "full"),
                ee.findtext(_Q + "status"),
                ee.findtext(_Q + "display-text"),
                tuple(
                    (me.get("id", ""), me.findtext(_Q + "type") or "")
                    for me in ee.iterfind(_Q + "media")
                ),
            )
            for ee in ue.iterfind(_Q + "endpoint")
        )
        roles = tuple(e.text or "" for e in ue.iterfind(f"{_Q}roles/{_Q}entry"))
        users.append(
            User(
                ue.get("entity", ""),
                ue.get("state", "full"),
                ue.findtext(_Q + "display-text"),
                roles,
                endpoints,
            )
        )
    count = cs.findtext(_Q + "user-count") if cs is not None else None
    active = cs.findtext(_Q + "active") if cs is not None else None
    return ConferenceInfo(
        entity=root.get("entity", ""),
        version=int(root.get("version", "0")),
        state=root.get("state", "full"),
        display_text=desc.findtext(_Q + "display-text") if desc is not None else None,
        subject=desc.findtext(_Q + "subject") if desc is not None else None,
        user_count=int(count) if count is not None else None,
        active=None if active is None else active.strip() in ("true", "1"),
        users=tuple(users),
        raw=bytes(data),
    )


def apply_partial(current: ConferenceInfo | None, update: ConferenceInfo) -> ConferenceInfo:
    """The subscriber's view after `update` (RFC 4575 4.6): a full state replaces everything, a
    partial one replaces or deletes users by entity. Version gaps are the caller's concern."""
    if current is None or update.state == "full":
        return update
    users = {u.entity: u for u in current.users}
    for u in update.users:
        if u.state == "deleted":
            users.pop(u.entity, None)
        else:
            users[u.entity] = u
    return ConferenceInfo(
        entity=current.entity,
        version=update.version,
        state="full",
        display_text=update.display_text or current.display_text,
        subject=update.subject or current.subject,
        user_count=update.user_count if update.user_count is not None else current.user_count,
        active=update.active if update.active is not None else current.active,
        users=tuple(users.values()),
    )
