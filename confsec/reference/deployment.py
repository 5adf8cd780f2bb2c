"""Starting and stopping the embedded reference deployment on loopback.

`ReferenceDeployment` is the asyncio object (focus + mixer + TLS listener); `EmbeddedReference`
runs one on its own event-loop thread, so that the suite's participants and the server never
share a loop: a step that blocks cannot stall the server, and the server's timing is not the
suite's. It builds the per-run test PKI and hands the suite a `Target` describing itself.
"""

from __future__ import annotations

import secrets
import shlex
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from confsec.codec.digest import DigestServer
from confsec.errors import ConfigError
from confsec.net.tls import client_context, server_context
from confsec.net.ua import UserAgent
from confsec.pki import TestPki
from confsec.reference import keychannel
from confsec.reference.auth import MD5_INTEROP, Authenticator
from confsec.reference.client_auth import apply_client_cert_defects
from confsec.reference.floor import FloorServer
from confsec.reference.focus import INTEROP, Focus, FocusConfig
from confsec.reference.liveness import LOST_PARTICIPANT_TIMEOUT_S, LostParticipants
from confsec.reference.mixer import Mixer
from confsec.reference.operator import ACTIONS as OPERATOR_ACTIONS
from confsec.reference.operator import SOCKET_NAME, OperatorConsole
from confsec.runtime.loop import LoopThread
from confsec.target.model import (
    CA_ISSUED_FLAWS,
    Account,
    AdapterSpec,
    Capabilities,
    InternalInterface,
    Target,
)

DOMAIN = "conference.example.test"
# What the reference declares (capability statement): every remaining participant rekeyed
# within 3 s of a join or leave (R6), and its new keys in use within 1 s (O2), at the 50
# participants of the scale outline; benchmarks/scale.py measures it to 1000.
REKEY_DEADLINE_S = 3.0
REKEY_LATENCY_BOUND_S = 1.0
DTLS_REKEY_LATENCY_BOUND_S = 4.0
"""A DTLS-SRTP rekey is a handshake per participant and medium (two ECDSA signatures each,
in one process): about 1.5 s for 50 participants measured on a 2-core machine; the bound
leaves room for a loaded one."""
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "mallory")
NAMED_USERS = USERS
"""The participants the features name: the PKI mints flawed client certificates for them."""
# Accounts for the larger conferences of the R6/O2 size outline (guest09 .. guest64).
USERS += tuple(f"guest{n:02d}" for n in range(9, 65))


@dataclass(frozen=True)
class ReferenceConfig:
    domain: str = DOMAIN
    host: str = "127.0.0.1"
    users: tuple[str, ...] = USERS
    defects: frozenset[str] = frozenset()
    mutual_tls: bool = True
    keylog_file: Path | None = None
    key_management: str = "sdes"
    """'sdes' (RFC 4568) or 'dtls-srtp' (RFC 5763/5764, see dtls_keying.py)."""
    operator_socket: Path | None = None
    """Where the operator console listens (operator.py); None: no console."""
    interop: frozenset[str] = frozenset()
    """Interop relaxations (focus.INTEROP) for third-party UAs; off by default, see README."""
    passwords: dict[str, str] = field(
        default_factory=lambda: {u: secrets.token_urlsafe(12) for u in USERS}, repr=False
    )


class ReferenceDeployment:
    """Focus (AS/MRFC) and mixer (MRFP) behind one SIP/TLS listener."""

    def __init__(self, pki: TestPki, config: ReferenceConfig):
        self.pki = pki
        self.config = config
        self.defects = config.defects
        self.ua: UserAgent | None = None
        unknown = config.interop - INTEROP
        if unknown:
            raise ConfigError(f"unknown interop flag(s): {', '.join(sorted(unknown))}")
        self.mixer = Mixer(config.host, config.defects)
        self.digest = self._digest_server("SHA-256")
        md5 = self._digest_server("MD5") if MD5_INTEROP & config.interop else None
        auth = Authenticator(self.digest, md5, defects=config.defects, interop=config.interop)
        self.focus = Focus(
            FocusConfig(
                config.domain,
                defects=config.defects,
                interop=config.interop,
                key_management=config.key_management,
            ),
            auth,
            self.mixer,
            config.host,
        )
        self.port = 0
        self.floor = FloorServer(config.host, config.defects)
        self.focus.floor = self.floor

    def _digest_server(self, algorithm: str) -> DigestServer:
        """One digest challenger; the interop profile adds an MD5 one beside SHA-256."""
        config = self.config
        return DigestServer(
            realm=config.domain,
            users={u: config.passwords[u] for u in config.users},
            algorithm=algorithm,
            now=time.monotonic,
            check_replay="accept-replayed-nonce" not in config.defects,
            check_response="accept-any-password" not in config.defects,
        )

    async def start(self) -> None:
        which = "other-domain" if "wrong-domain-cert" in self.defects else "service"
        cert = self.pki.server(which)
        require = self.config.mutual_tls and "no-client-cert-required" not in self.defects
        ctx = server_context(
            cert.cert,
            cert.key,
            ca_file=self.pki.ca_cert,
            require_client_cert=require,
            keylog_file=self.config.keylog_file,
        )
        if require:
            apply_client_cert_defects(ctx, self.defects)
        self.ua = await UserAgent.start(
            aor=f"sips:focus@{self.config.domain}",
            client_ssl=self._dial_out_context(),
            display_name="confsec reference focus",
            contact_host=self.config.host,
            transport=[("tls", self.config.host, 0)],
            server_ssl=ctx,
            request_handler=self.focus.handle,
            user_agent_header="confsec-reference/0.1",
        )
        self.focus.watch(self.ua)
        # A participant that vanishes without a BYE is noticed (R6): see liveness.py.
        self.liveness = LostParticipants(
            self.focus.conferences, self.mixer, self.ua.transport.is_open, self.focus.lost
        )
        if "no-vanish-detection" not in self.defects:
            self.liveness.start()
        self.port = self.ua.address("tls")[2]
        self.focus.port = self.port
        # O1: the focus reaches the mixer over a real (TLS) connection, see keychannel.py.
        self.key_channel = await keychannel.start_for(
            self.mixer,
            self.pki,
            host=self.config.host,
            domain=self.config.domain,
            defects=self.defects,
            keylog_file=self.config.keylog_file,
        )
        self.focus.mixer = self.key_channel.client
        await self._start_floor(cert.cert, cert.key)
        self.console = None
        if self.config.operator_socket is not None:
            self.console = OperatorConsole(self.focus, self.config.operator_socket)
            await self.console.start()

    def _dial_out_context(self) -> ssl.SSLContext:
        """The focus as a TLS client, when it calls a user (dialout.py): it presents the service
        certificate and verifies the callee's against the CA. The callee is reached by the
        address it registered, so the name check is on the certificate's SIP URI, after the
        handshake (`DialOut._callee_refusal`), not on a host name."""
        which = {"dial-out-wrong-cert": "other-domain", "dial-out-no-client-cert": None}
        chosen = [which[d] for d in which if d in self.defects]
        pair = self.pki.server(chosen[0]) if chosen and chosen[0] else None
        if not chosen:
            pair = self.pki.server("service")
        ctx = client_context(
            self.pki.ca_cert,
            pair.cert if pair else None,
            pair.key if pair else None,
            keylog_file=self.config.keylog_file,
        )
        ctx.check_hostname = False
        return ctx

    async def stop(self) -> None:
        if getattr(self, "console", None) is not None:
            await self.console.close()
        if getattr(self, "liveness", None) is not None:
            await self.liveness.close()
        if getattr(self, "key_channel", None) is not None:
            await self.key_channel.close()
        self.mixer.close()
        await self.floor.close()
        if self.ua is not None:
            await self.ua.close()

    async def _start_floor(self, cert: Path, key: Path) -> None:
        """BFCP over TLS (R8): the service certificate; the defect advertises another one's."""
        wrong = "bfcp-fingerprint-mismatch" in self.defects
        advertised = self.pki.server("other-domain").cert if wrong else cert
        ctx = server_context(
            cert,
            key,
            ca_file=self.pki.ca_cert,
            require_client_cert=True,
            keylog_file=self.config.keylog_file,
        )
        await self.floor.start(ctx, str(cert), str(advertised))

    def target(self) -> Target:
        accounts = {
            u: Account(
                name=u,
                username=u,
                password=self.config.passwords[u],
                display_name=u.capitalize(),
                client_cert=self.pki.client(u).cert,
                client_key=self.pki.client(u).key,
                # What a vendor's profile supplies: the flawed certificates only its CA can
                # issue (the suite mints the self-signed and untrusted-CA ones itself).
                flawed_certs={
                    flaw: (pair.cert, pair.key)
                    for flaw, pair in self.pki.flawed.get(u, {}).items()
                    if flaw in CA_ISSUED_FLAWS
                },
            )
            for u in self.config.users
        }
        return Target(
            adapters=operator_adapters(self.config.operator_socket),
            name="confsec embedded reference",
            domain=self.config.domain,
            host=self.config.host,
            port=self.port,
            factory_uri=self.focus.config.factory_uri,
            ca_file=self.pki.ca_cert,
            accounts=accounts,
            capabilities=Capabilities(
                mutual_tls=self.config.mutual_tls,
                event_package=True,
                floor_control=True,
                restricted_membership=True,  # RFC 5366 lists, see members.py
                # Members add users by REFER and the focus calls them (dialout.py), with SDES
                # keys; a DTLS-SRTP offer of the focus's own is not built.
                creation_modes=("dial-in-factory", "dial-out", "refer")
                if self.config.key_management == "sdes"
                else ("dial-in-factory",),
                # DTLS-SRTP alone cannot carry a group key (that needs EKT, RFC 8870, which
                # the reference does not implement): no common stream in that mode.
                group_keys=self.config.key_management == "sdes",
                key_management=self.config.key_management,
                rekey_batching_window_s=self.focus.config.rekey_window,
                rekey_deadline_s=REKEY_DEADLINE_S,
                rekey_latency_bound_s=REKEY_LATENCY_BOUND_S
                if self.config.key_management == "sdes"
                else DTLS_REKEY_LATENCY_BOUND_S,
                lost_participant_timeout_s=LOST_PARTICIPANT_TIMEOUT_S,
                internal_interfaces=(
                    InternalInterface(
                        "focus-mixer key channel",
                        self.config.host,
                        self.key_channel.port,
                        self.config.domain,
                    ),
                ),
            ),
        )


def operator_adapters(path: Path | None) -> dict[str, AdapterSpec]:
    """The operator actions of the reference's console, as a profile's adapters (the reference
    claims REFER, so they are used only where a profile claims dial-out alone)."""
    if path is None:
        return {}
    command = f"{shlex.quote(sys.executable)} -m confsec.cli reference operator --socket "
    return {
        a: AdapterSpec(a, command + f"{shlex.quote(str(path))} {a}", timeout=20.0)
        for a in OPERATOR_ACTIONS
    }


def operator_socket_in(workdir: Path) -> Path:
    """The operator console's socket: in the work directory, or in a short private directory
    of its own where that path would be too long for a Unix socket (108 bytes on Linux)."""
    path = workdir / SOCKET_NAME
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="confsec-op-")) / SOCKET_NAME


class EmbeddedReference:
    """A ReferenceDeployment running on its own loop thread, for fixtures and `confsec run`."""

    def __init__(self, loop: LoopThread, deployment: ReferenceDeployment):
        self.loop = loop
        self.deployment = deployment
        self.target = deployment.target()

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        defects: frozenset[str] = frozenset(),
        evidence_dir: Path | None = None,
        interop: frozenset[str] = frozenset(),
        key_management: str = "sdes",
    ) -> EmbeddedReference:
        pki = TestPki.create(workdir / "pki", DOMAIN, USERS, flawed_for=NAMED_USERS)
        keylog = evidence_dir / "reference-tls-keylog.txt" if evidence_dir else None
        config = ReferenceConfig(
            defects=defects,
            keylog_file=keylog,
            interop=interop,
            key_management=key_management,
            operator_socket=operator_socket_in(workdir),
        )
        deployment = ReferenceDeployment(pki, config)
        loop = LoopThread("confsec-reference")
        try:
            loop.run(deployment.start(), timeout=15, what="starting the reference deployment")
        except BaseException:
            loop.close()
            raise
        return cls(loop, deployment)

    def stop(self) -> None:
        try:
            self.loop.run(self.deployment.stop(), timeout=10, what="stopping the reference")
        finally:
            self.loop.close()
