"""kamailio (Debian `kamailio` + `kamailio-tls-modules`) as the TLS edge proxy of the reference.

The generated configuration makes kamailio what a deployment puts in front of a conference AS:
it terminates SIP over TLS with the service certificate, demands a client certificate, runs
SIP digest (SHA-256, qop=auth, nonce counts checked so a replay is refused) against the account
passwords, record-routes, and relays to the reference over TLS. The reference behind it trusts
the proxy for the identity (as an AS trusts its S-CSCF), so it does no digest of its own.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from confsec.pki import TestPki

MODULES = (
    "tm",
    "tls",
    "sl",
    "rr",
    "pv",
    "maxfwd",
    "textops",
    "siputils",
    "htable",
    "auth",
    "xlog",
    "sanity",
)


def need_kamailio() -> str:
    path = shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
    )
    if path is None or not Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists():
        pytest.skip("kamailio + kamailio-tls-modules are not installed; .ci/run installs them")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port: int, upstream: int, domain: str, passwords: dict[str, str]) -> str:
    users = "\n".join(f'    $sht(pw=>{u}) = "{p}";' for u, p in passwords.items())
    loads = "\n".join(f'loadmodule "{m}.so"' for m in MODULES)
    return f"""#!KAMAILIO
debug=1
log_stderror=yes
children=2
tcp_children=2
disable_tcp=no
enable_tls=yes
auto_aliases=no
listen=tls:127.0.0.1:{port}
alias="{domain}"

mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
{loads}

modparam("tls", "config", "TLS_CFG")
modparam("htable", "htable", "pw=>size=6;")
modparam("auth", "secret", "{secrets.token_hex(16)}")
modparam("auth", "algorithm", "SHA-256")
modparam("auth", "qop", "auth")
modparam("auth", "nonce_count", 1)
modparam("rr", "enable_full_lr", 1)

event_route[htable:mod-init] {{
{users}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("CANCEL") || has_totag()) {{
        if (has_totag()) loose_route();
        route(RELAY);
    }}
    if (is_method("ACK")) {{
        t_check_trans();
        exit;
    }}
    $var(pw) = $sht(pw=>$au);
    pv_www_authenticate("{domain}", "$var(pw)", "0");
    $var(rc) = $rc;
    xlog("L_NOTICE", "confsec: digest for '$au' gave $var(rc)\n");
    if ($var(rc) < 0) {{
        www_challenge("{domain}", "1");
        exit;
    }}
    consume_credentials();
    record_route();
    route(RELAY);
}}

route[RELAY] {{
    $du = "sip:127.0.0.1:{upstream};transport=tls";
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"""


class Kamailio:
    """A kamailio process in the foreground (-DD -E), its config in `workdir`."""

    def __init__(
        self, workdir: Path, pki: TestPki, upstream: int, domain: str, passwords: dict[str, str]
    ):
        self.dir = workdir / "kamailio"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        service = pki.server("service")
        tls_cfg = self.dir / "tls.cfg"
        tls_cfg.write_text(
            f"""[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
private_key = {service.key}
certificate = {service.cert}
ca_list = {pki.ca_cert}

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
ca_list = {pki.ca_cert}
"""
        )
        cfg = self.dir / "kamailio.cfg"
        cfg.write_text(
            config(self.port, upstream, domain, passwords).replace("TLS_CFG", str(tls_cfg))
        )
        self.log_file = self.dir / "kamailio.log"
        self.proc = subprocess.Popen(
            [
                need_kamailio(),
                "-f",
                str(cfg),
                "-DD",
                "-E",
                "-Y",
                str(self.dir),
                "-m",
                "64",
                "-M",
                "8",
                "-w",
                str(self.dir),
            ],
            stdout=self.log_file.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited:\n{self.log[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kamailio did not listen:\n{self.log[-3000:]}") from None
                time.sleep(0.1)

    @property
    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
