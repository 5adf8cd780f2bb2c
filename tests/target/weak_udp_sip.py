"""A deliberately weak SIP registrar on UDP: the probes' positive control.

It answers OPTIONS (svmap finds it), refuses unknown users with 404 but challenges known ones
(svwar tells them apart) and uses MD5 digest with a dictionary password (svcrack finds it).
"""

from __future__ import annotations

import re
import socket
import threading
import time

from confsec.codec.digest import DigestServer


class WeakUdpRegistrar:
    def __init__(self, users: dict[str, str], realm: str = "weak.example.test"):
        self.users = users
        self.digest = DigestServer(realm=realm, users=users, algorithm="MD5", now=time.monotonic)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            try:
                reply = self._reply(data.decode("utf-8", "replace"))
            except Exception:
                continue
            if reply:
                self.sock.sendto(reply.encode(), addr)

    def _reply(self, text: str) -> str | None:
        head, _, _ = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        method, uri = lines[0].split(" ")[:2]
        if method == "ACK":
            return None
        keep = [
            ln
            for ln in lines[1:]
            if ln.split(":")[0].lower()
            in ("via", "from", "to", "call-id", "cseq", "v", "f", "t", "i")
        ]
        hdrs = {
            ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip()
            for ln in lines[1:]
            if ":" in ln
        }

        def resp(code: str, extra: str = "") -> str:
            return (
                f"SIP/2.0 {code}\r\n"
                + "\r\n".join(keep)
                + "\r\n"
                + extra
                + "User-Agent: weak-registrar/1.0\r\nContent-Length: 0\r\n\r\n"
            )

        if method == "OPTIONS":
            return resp("200 OK")
        user = re.search(r"sips?:([^@;>]+)@", hdrs.get("to", hdrs.get("t", "")))
        name = user.group(1) if user else ""
        if name not in self.users:
            return resp("404 Not Found")
        auth = hdrs.get("authorization")
        if auth is None:
            return resp(
                "401 Unauthorized", f"WWW-Authenticate: {self.digest.challenge().to_header()}\r\n"
            )
        result = self.digest.verify(method, uri, auth)
        return resp("200 OK") if result.ok else resp("403 Forbidden")

    def close(self) -> None:
        self.sock.close()
