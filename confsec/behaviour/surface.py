"""The insecure-surface probes as R2 scenarios see them: one synchronous call per observation.

The probes themselves (`confsec.behaviour.probes`) are shared with `confsec probe`; this module
gives each a deadline from the target profile and runs the TLS ones on the suite's loop, so a
silent target ends a step with a verdict instead of hanging it.
"""

from __future__ import annotations

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.probes import (
    DictionaryTrial,
    DigestAttempt,
    observe_dictionary,
    observe_wrong_passwords,
    read_dictionary,
)
from confsec.behaviour.udp_probes import UdpSurface, observe_udp
from confsec.errors import NotApplicable

SIPVICIOUS_TIMEOUT = 30.0
"""Per sipvicious run: svmap alone waits about 3 s for answers that do not come."""


def _attempt_deadline(conf: ConferenceRun) -> float:
    """One digest attempt: a connection, then a challenge and its answer within one
    transaction timeout (the UA's own deadline), plus slack for the loop."""
    t = conf.target.timeouts
    return t.connect + t.transaction + 1.0


def wrong_passwords(conf: ConferenceRun, accounts: int, decoys: int) -> list[DigestAttempt]:
    """Up to `accounts` of the profile's users and `decoys` invented ones, each presenting a
    wrong password to the factory URI; their UAs join the scenario's SIP ladder."""
    coro = observe_wrong_passwords(
        conf.target, conf.keylog, accounts=accounts, decoys=decoys, keep=conf.keep_ua
    )
    n = min(accounts, len(conf.target.accounts)) + decoys
    return conf.runtime.run(coro, n * _attempt_deadline(conf), "wrong-password attempts")


def udp_surfaces(conf: ConferenceRun) -> list[UdpSurface]:
    """svmap and svwar on every plain-UDP listener the profile declares."""
    users = [a.username for a in conf.target.accounts.values()]
    udp = [ln for ln in conf.target.listeners if ln.transport == "udp"]
    return [observe_udp(ln, users, SIPVICIOUS_TIMEOUT) for ln in udp]


def dictionary_trials(conf: ConferenceRun, accounts: int) -> list[DictionaryTrial]:
    """Each of up to `accounts` accounts tried with every word of the profile's dictionary,
    between two attempts with its real password (the controls). Not applicable without one."""
    path = conf.target.probe_dictionary
    if path is None:
        raise NotApplicable("the target profile names no password dictionary ([probes])")
    n = min(accounts, len(conf.target.accounts)) * (len(read_dictionary(path)) + 2)
    coro = observe_dictionary(conf.target, path, conf.keylog, accounts=accounts)
    return conf.runtime.run(coro, n * _attempt_deadline(conf), "dictionary attempts")
