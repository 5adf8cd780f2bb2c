"""Self-validation: the suite passes the compliant reference and fails on every defect switch.

Each run is a real `confsec run` in a child process against the embedded reference on loopback,
exactly as a user would start it. For every defect switch, the scenarios of its requirement must
fail and the run must exit non-zero; `EXPECTED_FAILURES` pins which scenarios catch it, so a check
that silently stops catching its defect turns this test red.

A Scenario Outline is pinned per example ("... with AEAD_AES_128_GCM", "... of 50
participants"): a scenario name alone would let one failing example hide the others. A pinned
outline name stands for every example of its Examples table, read from the feature file.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
from pytest_bdd.scenario import make_python_name

from confsec.reference.defects import DEFECTS
from confsec.report.verdicts import example_title
from tests.cli_runner import ROOT, Run, compliant_run
from tests.cli_runner import confsec_run as cli_run

Case = tuple[str, tuple[tuple[str, str], ...]]
"""(scenario name as written, the example's values): one scenario, or one outline example."""


def example(name: str, **values: str) -> Case:
    """One example of an outline, where a defect concerns only some of them."""
    return (name, tuple(sorted(values.items())))


_FLAWED_CERT = "A client certificate that is <flaw> is refused where mutual TLS is claimed"
_R6_FORWARD = "Keys the leaver held decrypt nothing sent after the leave (forward security)"
_R6_BACKWARD = "Keys the joiner receives decrypt nothing sent before the join (backward security)"
_R6_LEAVE = "Every stream is rekeyed when a participant leaves"
_R6_JOIN = "Every stream is rekeyed when a participant joins"
_JOIN_CLAIM = (
    "A non-member claiming a member's identity in <claim> cannot join a members-only conference"
)
_SUBSCRIBE_CLAIM = (
    "A non-participant claiming a participant's identity in <claim> gets no conference state"
)

_SRTCP = "Every RTCP packet the conference sends is SRTCP that authenticates"
_DIAL_OUT_SECURE = "A conference that calls its participants is secure for everyone"
_DIAL_OUT_PLAIN_ONLY = "A user who can answer only plain RTP is not admitted unprotected"
_DIAL_OUT_SERVICE_AUTH = "The service authenticates itself to the users it calls"

# defect -> scenarios of its requirement that must fail (others of that requirement may pass).
# The key-channel defects are also caught on a capture by `confsec analyze` (tests/analyze/).
EXPECTED_FAILURES: dict[str, set[str | Case]] = {
    "key-channel-in-clear": {"Every interface that carries media keys is protected by TLS"},
    "key-channel-no-client-auth": {
        "An internal key interface refuses an unauthenticated peer",
        "An internal key interface refuses a participant's certificate",
    },
    "key-channel-any-client-cert": {
        "An internal key interface refuses a participant's certificate"
    },
    "factory-ignores-secure": {"A user creates a secure conference through the factory URI"},
    "no-isfocus": {"A user creates a secure conference through the factory URI"},
    "policy-not-applied": {"Participants who join later are held to the secure policy"},
    "accept-unauthenticated": {"A request without credentials is challenged and refused"},
    "accept-any-password": {"A wrong password is refused"},
    "accept-replayed-nonce": {"A replayed digest nonce is refused"},
    "digest-reveals-unknown-users": {
        "A wrong password is refused alike for existing and unknown users"
    },
    "wrong-domain-cert": {"The service presents a certificate valid for its domain"},
    "no-client-cert-required": {
        "A client without a certificate is refused where mutual TLS is claimed"
    },
    # A flawed certificate still fails verification under no-client-cert-required (the
    # listener asks for one, CERT_OPTIONAL): only the example of its own flaw catches each.
    "client-cert-ignores-validity": {
        example(_FLAWED_CERT, flaw=flaw) for flaw in ("expired", "not yet valid")
    },
    "client-cert-ignores-eku": {example(_FLAWED_CERT, flaw="not for client authentication")},
    "client-cert-any-ca": {
        example(_FLAWED_CERT, flaw=flaw) for flaw in ("self-signed", "issued by an untrusted CA")
    },
    "accept-plain-rtp": {
        "A plain RTP offer to the factory is refused",
        "A plain RTP join to a secure conference is refused",
    },
    "accept-null-cipher": {"A null cipher offer is refused"},
    "reoffer-policy-not-applied": {
        "A participant's <method> offering <offer> is refused and the session keeps its keys"
    },
    # AES_CM_128_HMAC_SHA1_80 is what this defect answers anyway: that example passes.
    "answer-other-suite": {
        example("Participants exchange protected media with <suite>", suite=suite)
        for suite in ("AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM")
    },
    "rekey-late": {
        "A conference of <size> participants uses its new keys within the declared latency"
    },
    "mixer-sends-plain-rtp": {"Participants exchange protected media with <suite>"},
    "mixer-mixes-unauthenticated": {
        "Unprotected media from an admitted participant does not reach the others"
    },
    # Issue 17: RTCP. A relayed participant's SRTCP is under that participant's key, so the
    # others refuse it too: the relay fails both scenarios.
    "mixer-sends-plain-rtcp": {_SRTCP},
    "srtcp-srtp-keystream": {_SRTCP},
    "mixer-relays-rtcp": {_SRTCP, "Plain RTCP from an admitted participant reaches nobody"},
    "reuse-key-across-participants": {
        "No key stream is shared between participants",
        "The ledger shows a distinct key stream for every stream",
    },
    "reuse-key-across-directions": {
        "No key stream is shared between the two directions of a leg",
        "The ledger shows a distinct key stream for every stream",
    },
    "reuse-key-across-media": {
        "No key stream is shared between audio and video",
        "The ledger shows a distinct key stream for every stream",
    },
    "group-key-to-non-member": {"A party outside the conference obtains no group key"},
    "group-key-equals-unicast": {"The common stream has a key stream of its own"},
    # Keys outside their holders' SDP answers (features/key_confinement.feature). The 183 and
    # the NOTIFY also carry group or unicast keys the R5 and R3 scenarios catch; each defect is
    # pinned under the requirement it is registered for.
    "key-in-provisional": {
        "Unicast media keys reach only their holders, in their SDP answers over TLS"
    },
    "key-in-error-response": {
        "The group key reaches only the members, in their SDP answers over TLS"
    },
    "key-in-notify": {"The conference event package carries no media key"},
    "key-in-bfcp-status": {"The group key reaches only the members, in their SDP answers over TLS"},
    # R6 is judged per medium (| medium | audio | video | common |). Only the common stream is
    # keyed alike for everyone, so only its examples of forward and backward security can open
    # under a leaver's or joiner's keys; unicast audio and video are per leg.
    "no-rekey-on-leave": {
        example(_R6_FORWARD, medium="common"),
        "Every stream is rekeyed when a participant leaves",
        "A conference of <size> participants is rekeyed completely after a leave",
    },
    "no-rekey-on-join": {
        example(_R6_BACKWARD, medium="common"),
        "Every stream is rekeyed when a participant joins",
    },
    # The group key of each epoch is drawn afresh: the common stream's example passes.
    "rekey-reuses-salt": {
        example("New keys and salts are fresh", medium=m) for m in ("audio", "video")
    },
    "rekey-partial": {
        example(_R6_FORWARD, medium="common"),
        example(_R6_LEAVE, medium="common"),
        example(_R6_JOIN, medium="common"),
    },
    "rekey-audio-only": {example(_R6_LEAVE, medium="video"), example(_R6_JOIN, medium="video")},
    # Leaving and vanishing, judged from the departed side (features/r6_leaving.feature)
    "mixer-keeps-sending-to-leaver": {
        "Nothing reaches a leaver's media legs after its BYE",
        "Nothing reaches a vanished participant's legs once the service had time to notice",
    },
    "mixer-mixes-leaver": {"Nothing a leaver sends after its BYE reaches the others"},
    "no-vanish-detection": {
        "A participant that vanishes is removed and the others are rekeyed",
        "Nothing reaches a vanished participant's legs once the service had time to notice",
    },
    "leaver-keeps-subscription": {
        "A leaver's subscription is terminated and tells it nothing more"
    },
    "subscribe-authorises-past-participants": {"A leaver that subscribes again is refused"},
    "notify-plain-transport": {"NOTIFY stays on TLS when the subscriber's Contact names plain UDP"},
    "subscribe-without-auth": {
        "A SUBSCRIBE without credentials gets no conference state",
        "An authenticated user who is not a participant gets no conference state",
    },
    "identity-from-header": {
        "The conference state shows authenticated identities, not claimed ones"
    },
    "bfcp-plain-tcp": {"A plain TCP/BFCP offer is refused"},
    "bfcp-fingerprint-mismatch": {
        "The floor control server presents the certificate its fingerprint names"
    },
    "bfcp-foreign-user-id": {"A floor request for another participant's user id is refused"},
    "bfcp-binds-on-hello": {
        "A first <message> on a fresh connection for another participant's user id is refused"
    },
    "bfcp-no-client-fingerprint-check": {
        "A floor control client whose certificate is not the one its offer named is refused"
    },
    "bfcp-crash-on-malformed": {
        "Malformed BFCP gets an Error or a close and the server keeps serving the others"
    },
    # Claimed identities (features/r2_claimed_identity.feature): each defect authorises what
    # one place of the request claims; the display-name ones also believe the From row, whose
    # display name is the claimed member's too.
    "join-authorises-from": {example(_JOIN_CLAIM, claim="From")},
    "join-authorises-pai": {example(_JOIN_CLAIM, claim="P-Asserted-Identity")},
    "join-authorises-display-name": {
        example(_JOIN_CLAIM, claim=c) for c in ("From", "the From display name")
    },
    "subscribe-authorises-from": {example(_SUBSCRIBE_CLAIM, claim="From")},
    "subscribe-authorises-pai": {example(_SUBSCRIBE_CLAIM, claim="P-Asserted-Identity")},
    "subscribe-authorises-display-name": {
        example(_SUBSCRIBE_CLAIM, claim=c) for c in ("From", "the From display name")
    },
    # No certificate check at all on a fresh connection: members' and outsiders' claims alike.
    "floor-authorises-claimed-user": {
        "A non-participant's first <message> under a participant's user id is refused",
        "A first <message> on a fresh connection for another participant's user id is refused",
        "A floor control client whose certificate is not the one its offer named is refused",
    },
    # Robustness: signalling
    "focus-crash-on-malformed-sip": {
        "A malformed SIP request is refused cleanly and the conference goes on",
        "An oversized SIP request is refused cleanly and the conference goes on",
    },
    "accept-malformed-sdp": {"An offer with malformed SDP is refused and the conference goes on"},
    "accept-unknown-suite": {
        "An offer with only unknown crypto suites is refused",
        "An unknown crypto suite offered first is skipped for a supported one",
    },
    # Robustness: media
    "mixer-crash-on-truncated": {"A truncated SRTP packet is dropped and the conference goes on"},
    "mixer-accepts-replay": {"A replayed SRTP packet is not mixed"},
    "mixer-skips-auth-check": {"A forged SRTP packet is not mixed"},
    # DTLS-SRTP key management: these runs use the reference in dtls-srtp mode
    "dtls-no-fingerprint-check": {
        "A certificate that does not match the signalled fingerprint gets no association"
    },
    "dtls-falls-back-to-sdes": {
        "An SDES offer to a DTLS-SRTP service is refused or answered with DTLS-SRTP"
    },
    "dtls-media-before-handshake": {"No media flows before the DTLS handshake has made its keys"},
    "dtls-rekey-keeps-association": {
        example(_R6_LEAVE, medium="audio"),
        example(_R6_LEAVE, medium="video"),
        example(_R6_JOIN, medium="audio"),
        example(_R6_JOIN, medium="video"),
        "A conference of <size> participants is rekeyed completely after a leave",
    },
    # Conferences that call their participants (features/dial_out.feature).
    "dial-out-best-effort-srtp": {_DIAL_OUT_SECURE, _DIAL_OUT_PLAIN_ONLY},
    "dial-out-plain-fallback": {_DIAL_OUT_PLAIN_ONLY},
    "dial-out-wrong-cert": {_DIAL_OUT_SERVICE_AUTH},
    "dial-out-no-client-cert": {_DIAL_OUT_SERVICE_AUTH},
    "refer-from-anyone": {
        "A REFER from a user who is not a participant is refused and nobody is called"
    },
    "refer-without-authentication": {"A REFER without credentials is refused and nobody is called"},
    "dial-out-names-claimed-identity": {
        "The conference state names a called user by the identity the service called"
    },
    "refer-removal-no-rekey": {
        "A participant the service removes is gone and the others are rekeyed"
    },
    "refer-notify-plain": {"The progress of a REFER reaches the referrer only over TLS"},
}


@cache
def outline_examples() -> dict[str, list[dict[str, str]]]:
    """Outline name -> the rows of its Examples table, from the feature files."""
    out: dict[str, list[dict[str, str]]] = {}
    for feature in sorted((ROOT / "features").glob("*.feature")):
        name, header, rows = None, None, []
        for line in [*feature.read_text().splitlines(), "Scenario:"]:
            text = line.strip()
            if re.match(r"(Scenario|Scenario Outline|Rule|Feature):", text):
                if name is not None:
                    out[name] = rows
                name, header, rows = None, None, []
                if text.startswith("Scenario Outline:"):
                    name = text.split(":", 1)[1].strip()
            elif name is not None and text.startswith("|"):
                cells = [c.strip() for c in text.strip("|").split("|")]
                if header is None:
                    header = cells
                else:
                    rows.append(dict(zip(header, cells, strict=True)))
    return out


def cases(name: str | Case) -> set[Case]:
    """Every example of an outline (or the one named by `example`), or the one plain scenario."""
    if isinstance(name, tuple):
        assert name in cases(name[0]), f"no such example: {name}"
        return {name}
    rows = outline_examples().get(name)
    if rows is None:
        return {(name, ())}
    assert rows, f"outline {name!r} has no examples"
    return {(name, tuple(sorted(r.items()))) for r in rows}


def title(case: Case) -> str:
    name, params = case
    return example_title(name, dict(params))


def record_case(s: dict) -> Case:
    return (s["name"], tuple(sorted((s.get("params") or {}).items())))


def confsec_run(tmp_path: Path, *args: str) -> tuple[int | None, dict, str]:
    result = cli_run(tmp_path / "reports", *args)
    return result.code, result.verdicts(), result.output


def only(scenarios: set[str | Case]) -> list[str]:
    """`-k` selecting these scenarios by the test names pytest-bdd gives them (an example's
    whole outline runs: the others may pass under the defect)."""
    names = {s[0] if isinstance(s, tuple) else s for s in scenarios}
    return ["-k", " or ".join(f"test_{make_python_name(n)}" for n in sorted(names))]


def by_id(doc: dict) -> dict[str, dict]:
    return {r["id"]: r for r in doc["requirements"]}


def test_every_defect_has_an_expectation() -> None:
    assert set(EXPECTED_FAILURES) == {d.name for d in DEFECTS}
    for scenarios in EXPECTED_FAILURES.values():
        for name in scenarios:
            assert cases(name), name


def test_outline_examples_are_read_from_the_features() -> None:
    sizes = cases("A conference of <size> participants is rekeyed completely after a leave")
    assert {dict(p)["size"] for _, p in sizes} == {"3", "10", "50"}
    assert title(sorted(sizes)[0]).startswith("A conference of 10 participants")


#: Requirements that do not apply to the reference keyed by DTLS-SRTP: a common stream needs a
#: group key, which DTLS-SRTP alone cannot carry (that takes EKT, RFC 8870, not built), so
#: the reference claims no group keys in that mode; the reason must say so.
DTLS_NOT_APPLICABLE = {"R5": "group key", "O3": "group key"}


@pytest.mark.timeout(600)  # the whole suite, about a minute on a quiet machine
@pytest.mark.parametrize("mode", ["sdes", "dtls-srtp"])
def test_compliant_reference_passes(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, mode: str
) -> None:
    # The SDES run is the session's shared compliant run (tests/test_cli.py reads its reports).
    if mode == "sdes":
        run = compliant_run(tmp_path_factory)
    else:
        run = Run(tmp_path, "--reference-key-management", mode)
    code, doc, output = run.code, run.verdicts(), run.output
    assert doc, output
    reqs = by_id(doc)
    not_applicable = DTLS_NOT_APPLICABLE if mode == "dtls-srtp" else {}
    for rid in reqs:  # every requirement R1-R8 and O1-O7 has scenarios
        assert reqs[rid]["scenarios"], rid
        if rid in not_applicable:
            assert reqs[rid]["verdict"] == "not applicable", (rid, reqs[rid])
            reasons = " ".join(s["reason"] for s in reqs[rid]["scenarios"])
            assert not_applicable[rid] in reasons, (rid, reasons)
            continue
        assert reqs[rid]["verdict"] == "pass", (rid, reqs[rid], output[-3000:])
    # Example by example: every outline example ran, and each passed (or does not apply).
    records = {record_case(s): s for r in doc["requirements"] for s in r["scenarios"]}
    for name in outline_examples():
        missing = [title(c) for c in cases(name) if c not in records]
        assert not missing, (name, missing)
    bad = [
        (title(c), s["verdict"], s["reason"])
        for c, s in records.items()
        if s["verdict"] not in ("pass", "not applicable")
    ]
    assert not bad, bad
    # Every pass shows what it rests on: non-empty evidence in verdicts.json.
    bare = [
        title(c)
        for c, s in records.items()
        if s["verdict"] == "pass" and not any(v > 0 for v in s["observed"]["counts"].values())
    ]
    assert not bare, bare
    assert code == 0, output[-3000:]
    assert (run.reports / "junit.xml").is_file()
    assert any((run.reports / "allure-results").iterdir())
    if mode == "dtls-srtp":
        sdes = scenarios_that_sent_sdes(run.base)
        # The control: the one scenario that offers SDES on purpose, expecting a refusal, is
        # seen doing so; no other scenario offered a=crypto to this DTLS-SRTP-only target.
        on_purpose = "An SDES offer to a DTLS-SRTP service is refused or answered with DTLS-SRTP"
        assert sdes == {f"test_{make_python_name(on_purpose)}"}, sdes


def scenarios_that_sent_sdes(run_dir: Path) -> set[str]:
    """The test names of the scenarios whose evidence bundle (the raw SIP the suite's user
    agents sent and received, in full.pcap) holds an `a=crypto` line. Against a DTLS-SRTP target
    none comes from the target (its answers carry no key), so each is an SDES offer."""
    names = set()
    for bundle in (run_dir / "evidence" / "scenarios").iterdir():
        if any(b"a=crypto:" in f.read_bytes() for f in bundle.glob("*.pcap")):
            meta = run_dir / "reports" / "evidence" / bundle.name / "evidence.json"
            nodeid = json.loads(meta.read_text())["nodeid"]
            names.add(nodeid.split("::")[-1].split("[")[0])
    return names


@pytest.mark.parametrize("defect", [d.name for d in DEFECTS])
def test_defect_is_caught(tmp_path: Path, defect: str) -> None:
    d = next(d for d in DEFECTS if d.name == defect)
    requirement = d.requirement
    mode = ("--reference-key-management", d.key_management) if d.key_management else ()
    # Only the pinned scenarios run: the others of the requirement "may pass" under the
    # defect, so running them would assert nothing (the compliant run covers them).
    # No Allure HTML: a second of node per run, ninety runs, and tests/test_cli.py checks it.
    code, doc, output = confsec_run(
        tmp_path,
        *("--defect", defect, "--req", requirement, "--no-allure-html", *mode),
        *only(EXPECTED_FAILURES[defect]),
    )
    assert doc, output
    req = by_id(doc)[requirement]
    assert req["verdict"] == "fail", (defect, req, output[-3000:])
    verdicts = {record_case(s): s["verdict"] for s in req["scenarios"]}
    expected = set().union(*(cases(n) for n in EXPECTED_FAILURES[defect]))
    not_failed = sorted(
        title(c) + f": {verdicts.get(c, 'not run')}" for c in expected if verdicts.get(c) != "fail"
    )
    assert not not_failed, (defect, not_failed, output[-3000:])
    assert code == 1, output[-3000:]
