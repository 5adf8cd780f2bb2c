"""The system under test as the suite sees it.

A `Target` is built from a target profile (`confsec.target.profile`, TOML), which the embedded
reference deployment writes about itself too. Secrets are held here and nowhere else; `repr`
never shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Account:
    """A user the suite may log in as. `name` is the participant name used in the Gherkin."""

    name: str
    username: str
    password: str = field(repr=False)
    display_name: str = ""
    client_cert: Path | None = None
    client_key: Path | None = field(default=None, repr=False)

    def aor(self, domain: str) -> str:
        return f"sips:{self.username}@{domain}"


@dataclass(frozen=True)
class Capabilities:
    """The capability statement (PICS): optional features the system claims.

    A scenario tagged `@pics:<name>` is not applicable unless the capability is claimed.
    """

    mutual_tls: bool = False
    video: bool = True
    group_keys: bool = False
    event_package: bool = False
    floor_control: bool = False
    key_management: str = "sdes"
    mixing: str = "mixing"
    srtp_suites: tuple[str, ...] = (
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AEAD_AES_128_GCM",
    )
    rekey_batching_window_s: float = 0.0
    rekey_deadline_s: float = 2.0
    """R6: seconds after a join or leave (past the batching window) by which the target
    declares every remaining participant rekeyed. The suite waits this long, and a margin,
    before it says a stream was not rekeyed."""
    rekey_latency_bound_s: float | None = None
    """O2: the rekey latency the target declares (event to first packet under the new keys).
    No requirement bounds it: without a declared bound it is measured and reported only."""
    creation_modes: tuple[str, ...] = ("dial-in-factory",)
    internal_interfaces: tuple[InternalInterface, ...] = ()
    """Interfaces inside the service that carry media keys (O1, O6), where the deployment names
    them; none named means the O1/O6 scenarios are not applicable."""

    def claims(self, pics: str) -> bool:
        # Creation modes are claimed by name (`@pics:dial-out`), the rest by attribute.
        if pics in self.creation_modes:
            return True
        name = pics.replace("-", "_")
        value = getattr(self, name, getattr(self, f"{name}_s", None))
        return bool(value)


@dataclass(frozen=True)
class Timeouts:
    """Deadlines that turn a hung system under test into a verdict."""

    connect: float = 5.0
    transaction: float = 8.0
    media: float = 5.0


@dataclass(frozen=True)
class InternalInterface:
    """An interface between components of the service that carries media keys (AS -> MRFP).

    `server_name` is the name its TLS certificate must carry; the suite checks that the
    interface runs TLS and refuses a client that presents no certificate.
    """

    name: str
    host: str
    port: int
    server_name: str


@dataclass(frozen=True)
class Listener:
    """A signalling listener the target declares (probed by the insecure-surface checks)."""

    transport: str
    host: str
    port: int


@dataclass(frozen=True)
class AdapterSpec:
    """How to perform one operator action (upper tester): a shell command or an entry point."""

    action: str
    command: str | None = None
    entry_point: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class Target:
    name: str
    domain: str
    host: str
    port: int
    factory_uri: str
    ca_file: Path
    accounts: dict[str, Account]
    capabilities: Capabilities = Capabilities()
    timeouts: Timeouts = Timeouts()
    transport: str = "tls"
    prearranged_uris: tuple[str, ...] = ()
    listeners: tuple[Listener, ...] = ()
    adapters: dict[str, AdapterSpec] = field(default_factory=dict)
    probe_dictionary: Path | None = None
    profile: Path | None = None

    @property
    def dest(self) -> tuple[str, str, int]:
        return (self.transport, self.host, self.port)

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            from confsec.errors import ConfigError

            raise ConfigError(
                f"the target has no account for participant {name!r}; "
                f"known: {', '.join(sorted(self.accounts))}"
            ) from None

    def claims(self, pics: str) -> bool:
        """Whether the target claims `pics` (`@pics:<name>`): the capability statement, plus
        what the profile declares outside it. `plain_listeners`: a plain-UDP SIP listener is
        declared, so the insecure-surface probes have somewhere to go."""
        if pics == "plain_listeners":
            return any(ln.transport == "udp" for ln in self.listeners)
        return self.capabilities.claims(pics)

    def secrets(self) -> list[str]:
        """Every secret the target profile holds (for the report scanner)."""
        return [a.password for a in self.accounts.values()]
