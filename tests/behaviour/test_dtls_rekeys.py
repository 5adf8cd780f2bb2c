"""A participant's DTLS-SRTP rekeys that come faster than their handshakes (R6, dtls_media).

What the 50-participant scenario ran into on a loaded machine: a join's re-offer started a
handshake, the leave's re-offer came before the service answered it, and the service's late
answer to the first reached the second handshake, which failed on the first one's certificate:
"alice's audio stream was not rekeyed", against the compliant reference. Here the service is
played by hand (tests/media/dtls_service.py) so that the late answer comes in exactly that
order: the superseded rekey ends without keys and without a failure, the leave's rekey keys the
leg, and the association in use until then is closed once the new one is up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confsec.behaviour import dtls_media
from confsec.behaviour.dtls_media import DtlsKeying
from confsec.codec.sdp import MediaDescription, new_tls_id
from confsec.media.dtls import self_signed_identity
from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger
from tests.media.dtls_service import Identity, Service, answer, handshake, server, until


@dataclass
class Party:
    """The part of a participant `dtls_media` uses (its `Party` protocol), and its rekeys."""

    name: str
    target: Any
    ledger: KeyStreamLedger = field(default_factory=KeyStreamLedger)
    legs: dict[str, MediaLeg] = field(default_factory=dict)
    dtls: DtlsKeying | None = None
    keylog: str | None = None
    rekeys: list[dict[str, Any]] = field(default_factory=list)


def reoffer(leg: MediaLeg, identity: Identity) -> MediaDescription:
    """The focus's re-offer of the audio stream: a new association (RFC 8842 section 5)."""
    return MediaDescription.build(
        "audio",
        port=leg.remote[1],
        proto=dtls_media.DTLS_PROTO,
        attributes=[("fingerprint", identity[2]), ("setup", "actpass"), ("tls-id", new_tls_id())],
    )


def test_a_rekey_superseded_before_its_handshake_ends_leaves_the_next_one_intact() -> None:
    async def main() -> None:
        p = Party("alice", SimpleNamespace(timeouts=SimpleNamespace(transaction=5.0)))
        p.dtls = DtlsKeying.new("alice", "AES_CM_128_HMAC_SHA1_80")
        leg = p.legs["audio"] = await MediaLeg.open()
        svc = await Service.open(leg)
        in_use, joined, left = (self_signed_identity(f"mixer-{n}") for n in range(3))

        def finish(pending: dtls_media.PendingRekey | None) -> asyncio.Task[None]:
            assert pending is not None
            return asyncio.ensure_future(dtls_media.finish_rekey(p, [pending], p.rekeys.append))

        _, first = dtls_media.answer_rekey(p, reoffer(leg, in_use), leg)
        s0 = server(in_use, p.dtls.fingerprint)
        await handshake(svc, s0, leg)
        await finish(first)
        c0 = first.driver
        assert p.dtls.in_use["audio"] is c0 and c0.endpoint.state == "connected"

        # The join's rekey: ClientHello 1 reaches the service, whose answer is delayed.
        _, join = dtls_media.answer_rekey(p, reoffer(leg, joined), leg)
        joining = finish(join)
        s1 = server(joined, p.dtls.fingerprint)
        late = await answer(svc, s1)
        # The leave's rekey supersedes it before that answer comes.
        _, leave = dtls_media.answer_rekey(p, reoffer(leg, left), leg)
        assert join.driver.endpoint.state == "failed"  # closed: its flights stop
        assert leave.old is c0  # the keys in use stay until the leave's rekey completes
        leaving = finish(leave)
        heard = leg.dtls_datagrams
        svc.send(late)
        await until(lambda: leg.dtls_datagrams == heard + len(late), "the join's late answer")
        s2 = server(left, p.dtls.fingerprint)
        await handshake(svc, s2, leg)
        await asyncio.gather(joining, leaving)

        assert leave.driver.endpoint.failure_reason is None  # was: the joined fingerprint's
        assert p.dtls.failures == {}  # was: "rekey: peer certificate fingerprint ... joined"
        keys = s2.srtp_keys()
        assert p.rekeys[1:] == [{}, {"audio": (keys.suite, keys.local_key, keys.local_salt)}]
        assert p.dtls.in_use["audio"] is leave.driver
        assert c0.endpoint.state == "closed"  # close_notify, once the new keys were in place
        assert leg.dtls_router.stale == len(late)
        leg.close()
        svc.close()

    asyncio.run(asyncio.wait_for(main(), 20))
