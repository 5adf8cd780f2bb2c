"""The reference's operator console: conferences an operator starts and fills by calling out.

Some conferences take no REFER and have no factory: a phone hosts one by calling each
participant and merging the calls, a bridge is filled from its management console. The suite
drives those through operator-action adapters (`[adapters.add-participant]`, confsec.target.
adapters). This console lets the reference be driven the same way, so that a profile claiming
only dial-out creation can be run against it: `confsec reference operator ACTION` is the adapter
command, and reads the action's parameters from the `CONFSEC_*` variables the suite sets.

The console listens on a Unix socket in the reference's work directory (mode 0600: the file
system is its access control; it never listens on the network). One JSON line in, one out.
An operator conference lives until it is ended, whoever is in it, and its participants are
called exactly as a REFER would have them called (dialout.py): the same secure offer, the same
certificate checks, the same admission and rekeying.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confsec.codec.sip import SipParseError, parse_uri
from confsec.errors import ConfigError
from confsec.reference.model import Conference

if TYPE_CHECKING:
    from confsec.reference.focus import Focus

ACTIONS = ("start-conference", "add-participant", "remove-participant", "end-conference")
SOCKET_NAME = "operator.sock"
REPLY_TIMEOUT_S = 30.0


class OperatorConsole:
    """Serves the operator's actions for `focus` on a Unix socket."""

    def __init__(self, focus: Focus, path: Path) -> None:
        self.focus = focus
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT_S)
            try:
                request = json.loads(line)
                reply = await self.act(str(request.get("action")), request)
            except (ValueError, AttributeError) as exc:
                reply = {"ok": False, "error": f"not a JSON object: {exc}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def act(self, action: str, p: dict[str, Any]) -> dict[str, Any]:
        focus = self.focus
        if action == "start-conference":
            cid = "conf-" + secrets.token_hex(6)
            creator = str(p.get("creator") or "operator")
            uri = f"sips:{cid}@{focus.config.domain}"
            focus.conferences[cid] = Conference(cid, uri, creator=creator, secure=True, held=True)
            return {"ok": True, "conference": uri}
        conf = focus.conferences.get(_user(p.get("conference")) or "")
        if conf is None:
            return {"ok": False, "error": f"no conference {p.get('conference')!r} in progress"}
        if action == "end-conference":
            conf.held = False
            for leg in list(conf.legs.values()):
                await focus.dialout.remove(conf, leg.user)
            focus.conferences.pop(conf.conference_id, None)
            return {"ok": True}
        user = _user(p.get("aor"))
        if user is None:
            return {"ok": False, "error": f"not a SIP address of record: {p.get('aor')!r}"}
        if action == "add-participant":
            contact = str(p.get("contact") or "")
            status, reason = await focus.dialout.call(conf, user, contact or None)
        elif action == "remove-participant":
            status, reason = await focus.dialout.remove(conf, user)
        else:
            return {"ok": False, "error": f"unknown action {action!r}; one of {', '.join(ACTIONS)}"}
        return {"ok": 200 <= status < 300, "status": status, "reason": reason}


def _user(value: object) -> str | None:
    try:
        return parse_uri(str(value)).user if value else None
    except SipParseError:
        return None


def request(path: Path, action: str, params: dict[str, str]) -> dict[str, Any]:
    """Send one action to the console at `path` (the adapter's side); its JSON reply."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown operator action {action!r}; one of {', '.join(ACTIONS)}")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(REPLY_TIMEOUT_S)
            s.connect(str(path))
            s.sendall(json.dumps({"action": action, **params}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the reference's operator console at {path}: {exc}; is "
            "`confsec reference serve` running with that work directory?"
        ) from None
    try:
        return json.loads(data)
    except ValueError:
        raise ConfigError(f"the operator console at {path} sent no reply") from None


def adapter_main(path: Path, action: str, environ: dict[str, str]) -> int:
    """`confsec reference operator ACTION`: the parameters from CONFSEC_* variables; prints
    the conference URI for start-conference; exit 1 with the reason when the action failed."""
    names = ("creator", "conference", "aor", "contact", "name")
    params = {
        n: environ[f"CONFSEC_{n.upper()}"] for n in names if f"CONFSEC_{n.upper()}" in environ
    }
    reply = request(path, action, params)
    if not reply.get("ok"):
        why = reply.get("error") or f"{reply.get('status')} {reply.get('reason')}"
        print(f"confsec reference operator: {action} failed: {why}", file=sys.stderr)
        return 1
    if "conference" in reply:
        print(reply["conference"])
    return 0
