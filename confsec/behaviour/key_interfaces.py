"""Probing the interfaces inside the service that carry media keys (O1, O6), for a scenario's
conference run: one TLS connection per interface the capability statement names, watched for a
refusal (confsec.behaviour.tls_probe)."""

from __future__ import annotations

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.outcomes import TlsProbe
from confsec.behaviour.tls_probe import INTERFACE_CLOSE_WATCH_S, tls_probe

__all__ = ["probe_interfaces"]


def probe_interfaces(conf: ConferenceRun, client: str) -> dict[str, TlsProbe]:
    """TLS to every internal key interface the capability statement names (O1, O6); the
    probes are kept in `conf.interface_probes` for the checks.

    `client` is who the suite claims to be: "none" (no client certificate: what the server
    presents is judged, and whether it refuses an anonymous peer) or "participant" (a
    participant's valid certificate, which only the AS's interface partner may replace).
    A refusal may come as an alert in the handshake (TLS 1.2) or as a close right after it
    (TLS 1.3), so the suite watches for a close either way: the verdict must not depend on
    the TLS version.
    """
    target = conf.target
    account = next(iter(target.accounts.values()), None) if client != "none" else None
    conf.interface_probes = {}
    for i in target.capabilities.internal_interfaces:
        probe = conf.runtime.run(
            tls_probe(
                target, conf.keylog, account, False, where=i, await_close=INTERFACE_CLOSE_WATCH_S
            ),
            target.timeouts.transaction * 2,
            f"TLS probe of {i.name}",
        )
        conf.count_window("close_watch", probe.close_watch_s)
        conf.interface_probes[i.name] = probe
    return conf.interface_probes
