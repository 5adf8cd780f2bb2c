"""The system under test as the suite sees it.

A `Target` is built from a target profile (`confsec.target.profile`, TOML), which the embedded
reference deployment writes about itself too. Secrets are held here and nowhere else; `repr`
never shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CLIENT_CERT_FLAWS = ("self-signed", "untrusted-ca", "expired", "not-yet-valid", "server-auth-only")
"""Client certificates a service that claims mutual TLS must refuse (R2), each for a real
participant's identity with exactly one flaw: RFC 5280 6.1 path validation fails on the first
four (no trusted issuer, twice; outside the validity period, twice), and the last carries an
extended key usage without id-kp-clientAuth (RFC 5280 4.2.1.12)."""
CA_ISSUED_FLAWS = ("expired", "not-yet-valid", "server-auth-only")
"""The flaws only a CA the service trusts can issue, i.e. the target's: its profile supplies
them (`Account.flawed_certs`). The suite mints the others itself for any target, because a CA
of its own is one the target does not trust."""


@dataclass(frozen=True)
class Account:
    """A user the suite may log in as. `name` is the participant name used in the Gherkin."""

    name: str
    username: str
    password: str = field(repr=False)
    display_name: str = ""
    client_cert: Path | None = None
    client_key: Path | None = field(default=None, repr=False)
    flawed_certs: Mapping[str, tuple[Path, Path]] = field(
        default_factory=dict, repr=False, hash=False
    )
    """(certificate, key) by flaw (`CA_ISSUED_FLAWS`): certificates for this account's
    identity, from the target's CA, that mutual TLS must refuse."""

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
    lost_participant_timeout_s: float | None = None
    """R6: seconds within which the target notices a participant that vanished without a BYE
    (its TLS connection closed and its media stopped) and removes it as for a leave, e.g. by a
    media inactivity timeout (RFC 3550 6.3.5). None: it declares no way of noticing, and the
    vanish scenarios (`@pics:lost_participant_timeout`) are not applicable."""
    restricted_membership: bool = False
    """R2: a conference can be created for named members only, with an RFC 5366 recipient list
    in the creation INVITE (multipart/mixed: the SDP offer and an RFC 4826 resource list with
    `Content-Disposition: recipient-list`, `Require: recipient-list-invite`). The creator and
    the listed users are its members and join by dialling in to the conference URI; any other
    user, however well authenticated, is refused with 403."""
    creation_modes: tuple[str, ...] = ("dial-in-factory",)
    internal_interfaces: tuple[InternalInterface, ...] = ()
    """Interfaces inside the service that carry media keys (O1, O6), where the deployment names
    them; none named means the O1/O6 scenarios are not applicable."""

    def claims(self, pics: str) -> bool:
        # Creation modes are claimed by name (`@pics:dial-out`), key management by its name
        # (`@pics:sdes`: a scenario about a=crypto), the rest by attribute.
        if pics in self.creation_modes:
            return True
        if pics in ("sdes", "dtls-srtp", "mikey-ticket"):
            return self.key_management == pics
        name = pics.replace("-", "_")
        value = getattr(self, name, getattr(self, f"{name}_s", None))
        return bool(value)

    def unclaimed(self, pics: str) -> str:
        """Why a scenario tagged `@pics:<pics>` does not apply, for the report."""
        if pics == "group_keys" and self.key_management == "dtls-srtp":
            return (
                "the target does not claim group_keys: it keys SRTP with DTLS-SRTP, whose "
                "per-association keys cannot carry a group key for a common stream without EKT "
                "(RFC 8870), and it claims no EKT"
            )
        if pics in ("sdes", "dtls-srtp", "mikey-ticket"):
            return f"the target keys SRTP with {self.key_management}, not {pics}"
        return f"the target does not claim {pics}"


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
    dial_out_reach: str = "register"
    """How the target finds a participant it calls (dial-out): "register" (the participant
    REGISTERs its contact at the service), or "adapter" (the contact goes to the operator's
    `add-participant` adapter with the other parameters)."""
    probe_dictionary: Path | None = None
    profile: Path | None = None

    @property
    def calls_out_only(self) -> bool:
        """The target takes no requests at all: it only calls its participants, who are
        handed to it by an adapter (a phone that hosts a conference by merging its calls)."""
        modes = set(self.capabilities.creation_modes)
        return modes <= {"dial-out"} and self.dial_out_reach == "adapter"

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
                f"known: {', '.join(sorted(self.accounts))}; add an [accounts.{name}] table "
                "to the target profile"
            ) from None

    def claims(self, pics: str) -> bool:
        """Whether the target claims `pics` (`@pics:<name>`): the capability statement, plus
        what the profile declares outside it. `plain_listeners`: a plain-UDP SIP listener is
        declared, so the insecure-surface probes have somewhere to go."""
        if pics == "plain_listeners":
            return any(ln.transport == "udp" for ln in self.listeners)
        return self.capabilities.claims(pics)

    def unclaimed(self, pics: str) -> str:
        if pics == "plain_listeners":
            return "the target profile declares no plain UDP SIP listener"
        return self.capabilities.unclaimed(pics)

    def secrets(self) -> list[str]:
        """Every secret the target profile holds (for the report scanner)."""
        return [a.password for a in self.accounts.values()]
