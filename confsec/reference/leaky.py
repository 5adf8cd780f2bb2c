"""How a focus lets media keys out of the SDP answer: the key-confinement defect switches.

SDES (RFC 4568) keeps a media key in one place, the answer (or re-offer) to its holder over TLS.
Each switch here is a bug a vendor could ship that puts one somewhere else; the suite's search of
everything the target sends (confsec.behaviour.key_leaks) must catch each:

- `key-in-provisional`: early media. The focus answers a joiner 183 Session Progress before it
  has built the joiner's own answer, describing the early media with the answer it last sent on
  another leg of the conference: that participant's keys (R3), and its group key (R5).
- `key-in-error-response`: a refused join's 488 lists the media the conference takes, as RFC 3261
  21.4.26 allows ("a message body containing a description of media capabilities MAY be
  present"), built from the common stream's live description, a=crypto included (R5).
- `key-in-notify`: the conference state carries, for a monitoring console, an extension element
  per member (RFC 4575 allows elements of other namespaces) with the key-params the focus sends
  that member with (O4, and R3).
- `key-in-bfcp-status`: the FloorRequestStatus names the stream the floor governs in its status
  text (RFC 8855 STATUS-INFO), copied from its SDP, key and all: the group key (R5).

Nothing here runs unless its switch is on: the focus registers itself (`serve`) only when one
is, and its event package and floor server call in only under `if "<switch>" in self.defects`.
They are handed to the helpers as themselves; the focus that owns them is found in the registry,
so that neither needs a reference to the focus it otherwise knows nothing of.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from confsec.codec import bfcp as b
from confsec.codec.sdp import MediaDescription, SessionDescription
from confsec.reference.rekey import is_common

if TYPE_CHECKING:
    from confsec.net.incoming import IncomingRequest
    from confsec.reference.model import Conference

SWITCHES = frozenset(
    {"key-in-provisional", "key-in-error-response", "key-in-notify", "key-in-bfcp-status"}
)
MONITOR_NS = "urn:x-confsec:monitor"
"""The namespace of the `key-in-notify` extension element."""

_FOCUSES: weakref.WeakSet[Any] = weakref.WeakSet()


def serve(focus: Any) -> None:
    """Let the helpers find `focus` from its event package or floor server (a weak reference:
    a stopped deployment is not kept alive)."""
    _FOCUSES.add(focus)


def _owner(component: Any) -> Any | None:
    return next((f for f in _FOCUSES if component is f.events or component is f.floor), None)


def _answers(focus: Any, conf: Conference) -> list[SessionDescription]:
    """The description the focus last sent on each leg of `conf`, newest leg last."""
    out = []
    for leg_id in list(conf.legs):
        session = focus.rekey.session(conf.conference_id, leg_id)
        if session is not None:
            out.append(session[0])
    return out


def _common_lines(focus: Any, conf: Conference) -> list[MediaDescription]:
    return [m for a in _answers(focus, conf) for m in a.media if is_common(m) and m.port]


def _crypto(m: MediaDescription) -> str | None:
    return next((v for n, v in m.attributes if n == "crypto" and v), None)


async def early_media(focus: Any, req: IncomingRequest, conf: Conference) -> None:
    """`key-in-provisional`: 183 with the last answer sent on another leg."""
    answers = _answers(focus, conf)
    if answers:
        sdp = answers[-1].to_bytes()
        await req.respond(183, "Session Progress", body=sdp, content_type="application/sdp")


async def refuse_with_media(
    focus: Any, req: IncomingRequest, conf: Conference, status: int, reason: str | None
) -> None:
    """`key-in-error-response`: the refusal with the common stream's description as body."""
    lines = _common_lines(focus, conf)[-1:]
    if not lines:
        await req.respond(status, reason)
        return
    sdp = SessionDescription.build("focus", focus.host, media=lines).to_bytes()
    await req.respond(status, reason, body=sdp, content_type="application/sdp")


def with_member_keys(events: Any, conference_id: str, body: bytes) -> bytes:
    """`key-in-notify`: the conference-info document with one `<m:srtp-key>` per member."""
    focus = _owner(events)
    conf = focus.conferences.get(conference_id) if focus is not None else None
    close = b"</conference-info>"
    if conf is None or close not in body:
        return body
    elements = []
    for leg_id, leg in list(conf.legs.items()):
        session = focus.rekey.session(conference_id, leg_id)
        lines = [m for m in session[0].media if not is_common(m)] if session else []
        params = next((c for m in lines if (c := _crypto(m))), None)
        if params is not None:
            suite, key_params = params.split()[1:3]
            entity = f"sips:{leg.user}@{events.domain}"
            elements.append(
                f'<m:srtp-key xmlns:m="{MONITOR_NS}" entity="{entity}" suite="{suite}">'
                f"{key_params}</m:srtp-key>".encode()
            )
    head, _, tail = body.rpartition(close)
    return head + b"".join(elements) + close + tail


def floor_request_status(server: Any, msg: b.Bfcp, fri: Any) -> b.Bfcp:
    """`key-in-bfcp-status`: the FloorRequestStatus answering `msg`, with a STATUS-INFO in the
    OVERALL-REQUEST-STATUS of `fri` that names the common stream the floor governs by its SDP
    line."""
    focus = _owner(server)
    name = next((n for n, i in server.conference_ids.items() if i == msg.conference_id), None)
    conf = focus.conferences.get(name) if focus is not None and name is not None else None
    lines = _common_lines(focus, conf) if conf is not None else []
    params = _crypto(lines[-1]) if lines else None
    if params is not None:
        text = f"floor 1 governs the common stream (a=crypto:{params})".encode()
        overall = fri.attributes[0]
        overall.attributes = [*overall.attributes, b.BfcpStatusInfo(text=text)]
    return b.Bfcp(
        primitive=b.Primitive.FLOOR_REQUEST_STATUS,
        R=1,
        conference_id=msg.conference_id,
        transaction_id=msg.transaction_id,
        user_id=msg.user_id,
        attributes=[fri],
    )
