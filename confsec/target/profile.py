"""Target profiles: a TOML file that describes a system under test the suite did not build.

A vendor points confsec at a deployment with a profile instead of the embedded reference. The
profile is the only input the suite trusts about the target, so every mistake in it is reported
before any traffic is sent, as a `ConfigError` that names the file, the key and what is wrong
(`profile.toml: accounts.alice.password_env: the environment variable CONFSEC_ALICE is not set`).
Secrets never appear in the file: an account names the environment variable that holds its
password, and an inline `password` is refused, because profiles get committed and mailed.

Relative paths (CA bundle, client certificates, dictionaries) are resolved against the
directory of the profile, so that a profile and its PKI can move together.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confsec.errors import ConfigError
from confsec.target.model import (
    CA_ISSUED_FLAWS,
    Account,
    AdapterSpec,
    Capabilities,
    InternalInterface,
    Listener,
    Target,
    Timeouts,
)

__all__ = ["CREATION_MODES", "KEY_MANAGEMENT", "load_profile"]

KEY_MANAGEMENT = ("sdes", "mikey-ticket", "dtls-srtp")
CREATION_MODES = ("dial-in-factory", "dial-in-prearranged", "dial-out", "refer")
MIXING = ("mixing", "switching")
DIAL_OUT_REACH = ("register", "adapter")
"""How the target reaches a participant it calls: the participant REGISTERs its contact with
the target, or the contact is given to the adapter that adds it (`add-participant`)."""
TRANSPORTS = ("tls", "tcp", "udp")
KNOWN_SUITES = (
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
)
ACTIONS = ("add-participant", "remove-participant", "start-conference", "end-conference")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIP_URI = re.compile(r"sips?:[^\s<>]+")
_ENTRY_POINT = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_CERT_KEYS = ("client_cert", "client_key", "flawed_certs")

_TOP = (
    "target",
    "signalling",
    "conference",
    "tls",
    "accounts",
    "timeouts",
    "capabilities",
    "listeners",
    "probes",
    "adapters",
    "dial_out",
)


class _Reader:
    """Typed access to one table of the profile, with errors that carry the dotted key."""

    def __init__(self, file: Path, data: Mapping[str, Any], prefix: str = ""):
        self.file = file
        self.data = data
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def error(self, name: str, what: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.key(name)}: {what}")

    def unknown(self, allowed: tuple[str, ...]) -> None:
        """Misspelt keys are errors: a typo must not silently disable a check."""
        for name in self.data:
            if name not in allowed:
                raise self.error(name, f"unknown key (allowed here: {', '.join(allowed)})")

    def table(self, name: str, required: bool = False) -> _Reader:
        value = self.data.get(name)
        if value is None:
            if required:
                raise self.error(name, "missing table")
            value = {}
        if not isinstance(value, dict):
            raise self.error(name, f"must be a table, not {_kind(value)}")
        return _Reader(self.file, value, f"{self.key(name)}.")

    def get(
        self, name: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False
    ) -> Any:
        if name not in self.data:
            if required:
                raise self.error(name, "missing (required)")
            return default
        value = self.data[name]
        # bool is an int in Python; a profile saying `port = true` is still wrong.
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            raise self.error(name, f"must be {_names(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise self.error(name, f"must be {_names(kind)}, not {_kind(value)}")
        return value

    def string(self, name: str, default: str | None = None, required: bool = False) -> Any:
        value = self.get(name, str, default, required)
        if name in self.data and not value.strip():
            raise self.error(name, "must not be empty")
        return value

    def number(self, name: str, default: float, positive: bool = True) -> float:
        value = float(self.get(name, (int, float), default))
        if positive and value <= 0:
            raise self.error(name, f"must be a positive number of seconds, not {value:g}")
        if value < 0:
            raise self.error(name, f"must not be negative, not {value:g}")
        return value

    def optional_number(self, name: str) -> float | None:
        """A positive number of seconds, or None where the key is absent (nothing declared)."""
        return self.number(name, 1.0) if name in self.data else None

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default)
        if value not in allowed:
            raise self.error(name, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def choices(
        self, name: str, allowed: tuple[str, ...], default: tuple[str, ...]
    ) -> tuple[str, ...]:
        value = self.get(name, list, list(default))
        for item in value:
            if not isinstance(item, str) or item not in allowed:
                raise self.error(name, f"{item!r} is not one of {', '.join(allowed)}")
        return tuple(value)

    def path(self, name: str, base: Path, required: bool = False) -> Path | None:
        value = self.string(name, required=required)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise self.error(name, f"no such file: {path}")
        return path

    def port(self, name: str, required: bool = True, default: int | None = None) -> int:
        value = self.get(name, int, default, required)
        if value is None or not 1 <= value <= 65535:
            raise self.error(name, f"must be a port number 1..65535, not {value}")
        return value


def load_profile(path: str | Path, environ: Mapping[str, str] | None = None) -> Target:
    """Read and validate a target profile; every problem is a `ConfigError` naming the key."""
    file = Path(path)
    env = os.environ if environ is None else environ
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the target profile: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    base = file.resolve().parent
    top = _Reader(file, data)
    top.unknown(_TOP)

    meta = top.table("target", required=True)
    meta.unknown(("name", "domain"))
    name = meta.string("name", required=True)
    domain = meta.string("domain", required=True)
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        raise meta.error("domain", f"{domain!r} is not a DNS domain name")

    sig = top.table("signalling", required=True)
    sig.unknown(("host", "port", "transport"))
    host = sig.string("host", required=True)
    port = sig.port("port")
    transport = sig.choice("transport", ("tls",), "tls")

    conf = top.table("conference", required=True)
    conf.unknown(("factory_uri", "prearranged_uris"))
    factory_uri = conf.string("factory_uri", default="")
    prearranged = conf.get("prearranged_uris", list, [])
    if factory_uri and not _SIP_URI.fullmatch(factory_uri):
        raise conf.error("factory_uri", f"{factory_uri!r} is not a sip: or sips: URI")
    for i, uri in enumerate(prearranged):
        if not isinstance(uri, str) or not _SIP_URI.fullmatch(uri):
            raise conf.error(f"prearranged_uris[{i}]", f"{uri!r} is not a sip: or sips: URI")

    tls = top.table("tls", required=True)
    tls.unknown(("ca_file",))
    ca_file = tls.path("ca_file", base, required=True)
    assert ca_file is not None

    accounts = _accounts(top.table("accounts", required=True), base, env)

    t = top.table("timeouts")
    t.unknown(("connect", "transaction", "media"))
    timeouts = Timeouts(
        connect=t.number("connect", Timeouts.connect),
        transaction=t.number("transaction", Timeouts.transaction),
        media=t.number("media", Timeouts.media),
    )

    capabilities = _capabilities(top.table("capabilities", required=True))
    if not factory_uri and not prearranged and "dial-out" not in capabilities.creation_modes:
        raise conf.error(
            "factory_uri",
            "give a factory URI or prearranged_uris (or both), or claim dial-out creation",
        )
    dial = top.table("dial_out")
    dial.unknown(("reach",))
    reach = dial.choice("reach", DIAL_OUT_REACH, "register")
    if "dial-in-factory" in capabilities.creation_modes and not factory_uri:
        raise conf.error(
            "factory_uri", "missing, but capabilities.creation_modes claims dial-in-factory"
        )

    listeners = _listeners(top, host)
    probes = top.table("probes")
    probes.unknown(("dictionary",))
    dictionary = probes.path("dictionary", base)
    adapters = _adapters(top.table("adapters"))

    return Target(
        name=name,
        domain=domain,
        host=host,
        port=port,
        factory_uri=factory_uri,
        ca_file=ca_file,
        accounts=accounts,
        capabilities=capabilities,
        timeouts=timeouts,
        transport=transport,
        prearranged_uris=tuple(prearranged),
        listeners=listeners,
        adapters=adapters,
        dial_out_reach=reach,
        probe_dictionary=dictionary,
        profile=file.resolve(),
    )


def _accounts(table: _Reader, base: Path, env: Mapping[str, str]) -> dict[str, Account]:
    if not table.data:
        raise ConfigError(f"{table.file}: accounts: at least one account is needed")
    accounts: dict[str, Account] = {}
    for participant in table.data:
        a = table.table(participant)
        if "password" in a.data:
            raise a.error(
                "password",
                "inline secrets are not allowed; name the environment "
                "variable that holds it with password_env",
            )
        a.unknown(("username", "password_env", "display_name", *_CERT_KEYS))
        var = a.string("password_env", required=True)
        if not _ENV_NAME.fullmatch(var):
            raise a.error("password_env", f"{var!r} is not an environment variable name")
        if var not in env:
            raise a.error("password_env", f"the environment variable {var} is not set")
        cert = a.path("client_cert", base)
        key = a.path("client_key", base)
        if (cert is None) != (key is None):
            raise a.error(
                "client_key" if key is None else "client_cert",
                "client_cert and client_key go together",
            )
        accounts[participant] = Account(
            name=participant,
            username=a.string("username", default=participant),
            password=env[var],
            display_name=a.string("display_name", default=participant.capitalize()),
            client_cert=cert,
            client_key=key,
            flawed_certs=_flawed_certs(a.table("flawed_certs"), base),
        )
    return accounts


def _flawed_certs(t: _Reader, base: Path) -> dict[str, tuple[Path, Path]]:
    """`[accounts.<name>.flawed_certs.<flaw>] cert, key`: this identity's certificates from the
    target's CA that mutual TLS must refuse (R2); the suite mints the other flaws itself."""
    t.unknown(CA_ISSUED_FLAWS)
    pairs = {f: t.table(f) for f in t.data}
    for pair in pairs.values():
        pair.unknown(("cert", "key"))
    return {f: (r.path("cert", base, True), r.path("key", base, True)) for f, r in pairs.items()}


def _capabilities(c: _Reader) -> Capabilities:
    c.unknown(
        (
            "key_management",
            "group_keys",
            "rekey_batching_window",
            "rekey_deadline",
            "rekey_latency_bound",
            "lost_participant_timeout",
            "event_package",
            "floor_control",
            "restricted_membership",
            "media_handling",
            "creation_modes",
            "mutual_tls",
            "video",
            "srtp_suites",
            "internal_interfaces",
        )
    )
    km = c.get("key_management", (str, list), "sdes")
    km_list = [km] if isinstance(km, str) else km
    for item in km_list:
        if item not in KEY_MANAGEMENT:
            raise c.error("key_management", f"{item!r} is not one of {', '.join(KEY_MANAGEMENT)}")
    if not km_list:
        raise c.error("key_management", "name at least one key management method")
    suites = c.get("srtp_suites", list, list(Capabilities.srtp_suites))
    for s in suites:
        if s not in KNOWN_SUITES:
            raise c.error("srtp_suites", f"{s!r} is not one of {', '.join(KNOWN_SUITES)}")
    return Capabilities(
        mutual_tls=c.get("mutual_tls", bool, False),
        video=c.get("video", bool, True),
        group_keys=c.get("group_keys", bool, False),
        event_package=c.get("event_package", bool, False),
        floor_control=c.get("floor_control", bool, False),
        restricted_membership=c.get("restricted_membership", bool, False),
        key_management=km_list[0],
        mixing=c.choice("media_handling", MIXING, "mixing"),
        srtp_suites=tuple(suites),
        rekey_batching_window_s=c.number("rekey_batching_window", 0.0, positive=False),
        rekey_deadline_s=c.number("rekey_deadline", Capabilities.rekey_deadline_s),
        rekey_latency_bound_s=(
            c.number("rekey_latency_bound", 1.0) if "rekey_latency_bound" in c.data else None
        ),
        lost_participant_timeout_s=c.optional_number("lost_participant_timeout"),
        creation_modes=c.choices("creation_modes", CREATION_MODES, ("dial-in-factory",)),
        internal_interfaces=_internal_interfaces(c),
    )


def _internal_interfaces(c: _Reader) -> tuple[InternalInterface, ...]:
    """Interfaces inside the service that carry media keys (O1/O6), as the vendor names them."""
    out = []
    for i, item in enumerate(c.get("internal_interfaces", list, [])):
        if not isinstance(item, dict):
            raise c.error(f"internal_interfaces[{i}]", "must be a table {name, host, port, ...}")
        r = _Reader(c.file, item, f"{c.key('internal_interfaces')}[{i}].")
        r.unknown(("name", "host", "port", "server_name"))
        out.append(
            InternalInterface(
                r.string("name", required=True),
                r.string("host", required=True),
                r.port("port"),
                r.string("server_name", required=True),
            )
        )
    return tuple(out)


def _listeners(top: _Reader, host: str) -> tuple[Listener, ...]:
    value = top.get("listeners", list, [])
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise top.error(f"listeners[{i}]", "must be a table ([[listeners]])")
        r = _Reader(top.file, item, f"listeners[{i}].")
        r.unknown(("transport", "host", "port"))
        out.append(
            Listener(
                r.choice("transport", TRANSPORTS, "udp"),
                r.string("host", default=host),
                r.port("port"),
            )
        )
    return tuple(out)


def _adapters(table: _Reader) -> dict[str, AdapterSpec]:
    out: dict[str, AdapterSpec] = {}
    for action in table.data:
        a = table.table(action)
        a.unknown(("command", "entry_point", "timeout"))
        command = a.string("command")
        entry = a.string("entry_point")
        if (command is None) == (entry is None):
            raise a.error("command", "give exactly one of command or entry_point")
        if entry is not None and not _ENTRY_POINT.fullmatch(entry):
            raise a.error("entry_point", f"{entry!r} is not of the form package.module:function")
        out[action] = AdapterSpec(action, command, entry, a.number("timeout", 30.0))
    return out


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


_WORDS = {str: "a string", int: "an integer", float: "a number", list: "an array", dict: "a table"}


def _names(kind: type | tuple[type, ...]) -> str:
    words = {**_WORDS, bool: "true or false"}
    return " or ".join(words.get(k, k.__name__) for k in _as_tuple(kind))


def _kind(value: object) -> str:
    return {**_WORDS, bool: "a boolean"}.get(type(value), type(value).__name__)
