"""The SIP entry point: mutated requests over mallory's own TLS connection to the focus.

The valid requests are an INVITE with SDP (to the conference with mallory's Authorization, and
to the factory URI), SUBSCRIBE, OPTIONS, and a re-INVITE and BYE in mallory's dialog. Each is
rebuilt with a fresh branch, Call-ID and CSeq before it is mutated, so the server never sees a
retransmission (which it would answer from its transaction, not judge afresh). When the server
closes the connection (lost framing) or leaves it waiting for more bytes, the fuzzer reconnects.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from confsec.codec.sip import Request, Response
from confsec.fuzz.connections import RawSip
from confsec.fuzz.harness import FuzzHarness
from confsec.fuzz.mutate import mutate
from confsec.fuzz.report import EntryStats
from confsec.net.flow import Flow

IN_DIALOG_SEEDS = 4
"""Seeds from this index on are in mallory's dialog (see `SipEntry.seeds`)."""


class SipEntry:
    name = "sip"

    def __init__(self, h: FuzzHarness) -> None:
        self.h = h
        self._conn: RawSip | None = None
        self._counter = 0

    async def setup(self) -> None:
        """Nothing to prepare: the seeds are rebuilt from mallory's state for every input."""

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def seeds(self, flow: Flow) -> list[Callable[[], bytes]]:
        """Builders of valid requests, each call with a fresh branch, Call-ID or CSeq."""
        h = self.h
        mallory = h.mallory
        ua = mallory.ua
        dialog = mallory.dialog
        invite = next(
            e.message
            for e in reversed(ua.trace)
            if e.direction == "sent" and isinstance(e.message, Request) and e.message.body
        )
        auth = invite.headers.get("Authorization") or ""
        sdp = invite.body
        conf_uri = h.conf.conference_uri or ""

        def out_of_dialog(
            method: str, uri: str, headers: list[tuple[str, str]], body: bytes
        ) -> Callable[[], bytes]:
            def build() -> bytes:
                return ua.build_request(
                    method,
                    uri,
                    flow,
                    call_id=f"{secrets.token_hex(8)}@fuzz",
                    from_tag=secrets.token_hex(4),
                    cseq=h.rng.randint(1, 9999),
                    headers=headers,
                    body=body,
                    content_type="application/sdp" if body else None,
                ).to_bytes()

            return build

        def in_dialog(method: str, body: bytes) -> Callable[[], bytes]:
            def build() -> bytes:
                assert dialog is not None
                self._counter += 1
                return ua.build_request(
                    method,
                    dialog.remote_target or conf_uri,
                    flow,
                    call_id=dialog.call_id,
                    from_tag=dialog.local_tag,
                    cseq=dialog.local_seq + 100 + self._counter,
                    to=f"<{dialog.remote_uri}>;tag={dialog.remote_tag}",
                    body=body,
                    content_type="application/sdp" if body else None,
                ).to_bytes()

            return build

        subscribe = [
            ("Event", "conference"),
            ("Expires", "60"),
            ("Accept", "application/conference-info+xml"),
        ]
        seeds = [
            out_of_dialog("INVITE", conf_uri, [("Authorization", auth)], sdp),
            out_of_dialog("INVITE", h.target.factory_uri, [], sdp),
            out_of_dialog("SUBSCRIBE", conf_uri, subscribe, b""),
            out_of_dialog("OPTIONS", h.target.factory_uri, [], b""),
        ]
        if dialog is not None:
            seeds += [in_dialog("INVITE", sdp), in_dialog("BYE", b"")]
        return seeds

    async def fuzz(self, stats: EntryStats, n: int) -> None:
        h = self.h
        await h.rejoin_mallory("sip")
        for _ in range(n):
            if self._conn is None or self._conn.closed.is_set():
                self._conn = await h.connect_sip()
            if self._conn is None:
                stats.refused += 1
                stats.inputs += 1
                if not h.note_probe(stats, await h.sip_probe(), b""):
                    return
                continue
            conn = self._conn
            seeds = self.seeds(conn.flow)
            pick = h.rng.randrange(len(seeds))
            valid = seeds[pick]()
            data = mutate(h.rng, valid, [valid])
            if h.rng.random() < 0.5:
                data = fix_content_length(data)
            since = len(conn.responses)
            stats.inputs += 1
            conn.send(data)
            alive = h.note_probe(stats, await h.sip_probe(), data)
            await conn.wait(since, h.grace_s)
            got = conn.responses[since:]
            for r in got:
                stats.responses[f"{r.status // 100}xx"] += 1
                method = (r.headers.get("CSeq") or "").split()[-1:]  # echoed, maybe mangled
                if method == ["BYE"] and 200 <= r.status < 300:
                    h.mallory_ended = True  # a mutated BYE that still ended the dialog
            if conn.closed.is_set():
                stats.closed += 1
                self._conn = None
            elif not got:
                stats.responses["none"] += 1
                await conn.close()  # the server may be waiting for a body: start afresh
                self._conn = None
            if not alive:
                return
            if pick >= IN_DIALOG_SEEDS:
                await h.rejoin_mallory("sip")  # keep the in-dialog seeds on a live dialog

    async def send_raw(self, data: bytes) -> tuple[list[Response], bool]:
        """Write `data` on a fresh TLS connection to the focus; returns the responses that came
        back and whether the server closed the connection."""
        h = self.h
        conn = await h.connect_sip()
        assert conn is not None, "cannot connect to the focus"
        try:
            conn.send(data)
            await h.sip_probe()  # answered: the focus has taken the bytes in
            await conn.wait(0, h.grace_s)
            return list(conn.responses), conn.closed.is_set()
        finally:
            await conn.close()


def fix_content_length(data: bytes) -> bytes:
    """Make Content-Length match the body again, so that the message frames on the stream and
    the parser and the focus, not only the framing, judge the mutation."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return data
    fixed = re.sub(
        rb"(?im)^(content-length|l)([ \t]*:[ \t]*)\d+", rb"\g<1>\g<2>%d" % len(body), head
    )
    return fixed + sep + body
