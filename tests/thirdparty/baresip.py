"""Driving baresip (Debian `baresip-core`) headless: one process per participant.

Each instance gets its own config directory: SIP over TLS with the participant's client
certificate (one PEM with the key, as baresip wants), the run's CA, `srtp-mand` media
encryption (SDES, RFC 4568) or `dtls_srtp` (RFC 5763/5764, `mediaenc="dtls_srtp"`), PCMU from
the `ausine` source, no audio device, and `ctrl_tcp` for commands.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from confsec.target.model import Target

INTEROP = frozenset({"digest-md5-only", "sip-over-tls"})
"""The reference's interop flags baresip 1.0 needs to stay in a call (test_baresip.py says why):
MD5-only digest, and a `sip:` conference URI over TLS."""

MODULES = ("g711.so", "ausine.so", "alsa.so", "ctrl_tcp.so")
MODULE_DIR = Path("/usr/lib/baresip/modules")
MEDIAENC_MODULES = {"srtp-mand": "srtp.so", "dtls_srtp": "dtls_srtp.so"}
"""The module each `mediaenc` of the account line needs (both are in baresip-core)."""


def need_baresip(mediaenc: str = "srtp-mand") -> str:
    path = shutil.which("baresip")
    if path is None:
        pytest.skip("baresip is not installed; .ci/run installs baresip-core")
    module = MODULE_DIR / MEDIAENC_MODULES[mediaenc]
    if not module.exists():
        pytest.skip(f"baresip has no {module.name} ({mediaenc}); .ci/run installs baresip-core")
    return path


def conference_id(uri: str) -> str:
    """`conf-...` of a conference URI: what baresip dials as `sip:<id>@<domain>`."""
    return uri.split(":")[1].split("@")[0]


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def free_port(pair: bool = False) -> int:
    """A free port (and, with `pair`, its successor free too: baresip's TLS is SIP port + 1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


class Baresip:
    """One baresip participant; `dial()` goes through ctrl_tcp, `log` is its console."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        target: Target,
        tone_hz: int = 440,
        dns_port: int = 0,
        mediaenc: str = "srtp-mand",
    ):
        self.name = name
        self.mediaenc = mediaenc
        self.dir = workdir / f"baresip-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        account = target.account(name)
        pem = self.dir / "cert.pem"
        assert account.client_cert and account.client_key
        pem.write_bytes(account.client_cert.read_bytes() + account.client_key.read_bytes())
        self.ctrl_port = free_port()
        lines = {
            "poll_method": "epoll",
            "sip_listen": f"127.0.0.1:{free_port(pair=True)}",
            "sip_certificate": str(pem),
            "sip_cafile": str(target.ca_file),
            "net_interface": "127.0.0.1",
            "audio_player": "alsa,null",
            "audio_alert": "alsa,null",
            "audio_source": f"ausine,{tone_hz}",
            "ausrc_srate": "48000",
            "ausrc_channels": "2",
            "module_path": str(MODULE_DIR),
            "ctrl_tcp_listen": f"127.0.0.1:{self.ctrl_port}",
        }
        if dns_port:
            lines["dns_server"] = f"127.0.0.1:{dns_port}"
        text = "".join(f"{k}\t{v}\n" for k, v in lines.items())
        text += "".join(f"module\t{m}\n" for m in (*MODULES, MEDIAENC_MODULES[mediaenc]))
        text += "module_app\taccount.so\nmodule_app\tmenu.so\n"
        (self.dir / "config").write_text(text)
        # regint=0: the reference is a conference server, not a registrar.
        (self.dir / "accounts").write_text(
            f"<sips:{account.username}@{target.domain}>;auth_pass={account.password};"
            f'outbound="sip:{target.host}:{target.port};transport=tls";regint=0;'
            f"mediaenc={mediaenc};audio_codecs=PCMU\n"
        )
        (self.dir / "contacts").write_text("")
        self.log_file = self.dir / "console.log"
        self.proc = subprocess.Popen(
            [need_baresip(mediaenc), "-f", str(self.dir), "-s"],
            stdin=subprocess.DEVNULL,
            stdout=self.log_file.open("w"),
            stderr=subprocess.STDOUT,
        )
        self._wait_for("baresip is ready", 10)

    @property
    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def sip_messages(self) -> list[str]:
        """The SIP trace (`-s`): every message sent or received, in order, LF line ends.
        baresip frames each as ESC[36;1m#, a `TLS from -> to` line, the message, ESC[;m."""
        out = []
        for chunk in self.log.split("\x1b[36;1m#\n")[1:]:
            message = chunk.split("\x1b[;m", 1)[0].split("\n", 1)[-1]
            out.append(message.replace("\r\n", "\n"))
        return out

    def rx_bitrate(self) -> int:
        """The receive bit rate of the last status line (`audio=tx/rx (bit/s)`): what baresip
        decoded, so only packets its SRTP accepted."""
        rates = re.findall(r"audio=\d+/(\d+) \(bit/s\)", self.log)
        return int(rates[-1]) if rates else 0

    def _wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip {self.name} exited:\n{self.log[-2000:]}")
            time.sleep(0.1)
        return False

    def command(self, command: str, params: str = "") -> dict:
        """One ctrl_tcp command (a netstring holding JSON), and its response."""
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5) as s:
            s.sendall(str(len(body)).encode() + b":" + body + b",")
            data = b""
            while True:  # events may arrive too: take the netstring that answers `token`
                chunk = s.recv(65536)
                if not chunk:
                    return {}
                data += chunk
                while b":" in data:
                    size, _, rest = data.partition(b":")
                    n = int(size)
                    if len(rest) < n + 1:
                        break
                    msg, data = json.loads(rest[:n]), rest[n + 1 :]
                    if msg.get("token") == command or msg.get("response"):
                        return msg

    def dial(self, uri: str) -> dict:
        # baresip 1.0 prefixes "sip:" to any URI without the substring "sip:", which turns a
        # sips: URI into "sip:sips:..."; a harmless parameter carrying "sip:" stops that.
        return self.command("dial", f"{uri};x-confsec=sip:")

    def wait_for(self, text: str, timeout: float = 10) -> bool:
        return self._wait_for(text, timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
