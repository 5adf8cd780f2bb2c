"""The focus's interop relaxations (FocusConfig.interop), driven by confsec's own participants.

They exist for third-party UAs (baresip 1.0, tests/thirdparty/) and are off by default; here
each one is pinned without baresip: what the 401 offers, which Request-URI schemes are taken,
and which Contact the 200 OK and the rekey re-INVITEs carry.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from confsec.behaviour.conference import ConferenceRun
from confsec.behaviour.participant import OfferSpec
from confsec.codec.sip import Request, Response
from confsec.errors import ConfigError
from confsec.pki import TestPki
from confsec.reference.deployment import (
    DOMAIN,
    EmbeddedReference,
    ReferenceConfig,
    ReferenceDeployment,
)
from confsec.runtime.loop import LoopThread


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread("test-interop")
    yield lt
    lt.close()


def _run(tmp_path: Path, loop: LoopThread, interop: frozenset[str], factory_scheme: str = "sips"):
    ref = EmbeddedReference.start(tmp_path / "ref", interop=interop)
    target = ref.target
    if factory_scheme != "sips":
        target = dataclasses.replace(
            target, factory_uri=f"{factory_scheme}:conf-factory@{target.domain}"
        )
    return ref, ConferenceRun(loop, target, keylog=tmp_path / "keylog.txt")


def _received(conf: ConferenceRun, name: str) -> list[Request | Response]:
    return [
        e.message
        for e in conf.participant(name).ua.trace
        if e.direction == "received" and not isinstance(e.message, bytes)
    ]


def _challenges(conf: ConferenceRun, name: str) -> list[str]:
    (first,) = [m for m in _received(conf, name) if isinstance(m, Response) and m.status == 401]
    return [
        v.split("algorithm=")[1].split(",")[0] for v in first.headers.get_all("WWW-Authenticate")
    ]


@pytest.mark.parametrize(
    ("interop", "algorithms"),
    [
        (frozenset(), ["SHA-256"]),
        (frozenset({"digest-md5"}), ["SHA-256", "MD5"]),  # RFC 8760 §2.4: preferred first
        (frozenset({"digest-md5-only"}), ["MD5"]),
    ],
)
def test_the_401_offers_the_algorithms_the_interop_flags_allow(
    tmp_path: Path, loop: LoopThread, interop: frozenset[str], algorithms: list[str]
) -> None:
    ref, conf = _run(tmp_path, loop, interop)
    try:
        assert conf.create("alice", OfferSpec()).status == 200  # its answer (topmost) admitted
        assert _challenges(conf, "alice") == algorithms
    finally:
        conf.close()
        ref.stop()


def test_a_sip_request_uri_is_refused_without_sip_over_tls(tmp_path: Path, loop: LoopThread):
    ref, conf = _run(tmp_path, loop, frozenset({"digest-md5"}), factory_scheme="sip")
    try:
        out = conf.create("alice", OfferSpec())
        assert (out.status, out.reason) == (416, "SIPS URI required")
    finally:
        conf.close()
        ref.stop()


def test_sip_over_tls_answers_and_rekeys_with_a_sip_contact(tmp_path: Path, loop: LoopThread):
    ref, conf = _run(tmp_path, loop, frozenset({"sip-over-tls"}), factory_scheme="sip")
    try:
        created = conf.create("alice", OfferSpec())
        assert created.status == 200 and created.response is not None
        contact = created.response.headers.get("Contact") or ""
        host, port = ref.target.host, ref.target.port
        assert contact.startswith("<sip:conf-") and contact.endswith(
            f"@{host}:{port};transport=tls>;isfocus"
        )
        assert conf.join("bob", OfferSpec()).status == 200  # rekeys alice by re-INVITE

        async def rekeyed() -> None:
            while not ref.deployment.focus.rekey.rounds:
                await asyncio.sleep(0.02)

        ref.loop.run(rekeyed(), timeout=10, what="the rekey round")
        reinvites = [
            m for m in _received(conf, "alice") if isinstance(m, Request) and m.method == "INVITE"
        ]
        assert reinvites and all(r.headers.get("Contact") == contact for r in reinvites)
        assert conf.join("carol", OfferSpec(secure=False)).status == 488  # still SRTP only
    finally:
        conf.close()
        ref.stop()


def test_an_unknown_interop_flag_is_a_configuration_error(tmp_path: Path) -> None:
    pki = TestPki.create(tmp_path / "pki", DOMAIN, ("alice",))
    with pytest.raises(ConfigError, match="sips-optional"):
        ReferenceDeployment(pki, ReferenceConfig(interop=frozenset({"sips-optional"})))
