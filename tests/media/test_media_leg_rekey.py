"""MediaLeg during a rekey (R6): key switch mid-stream, the old receiver as fallback, the
`recent` packet history the checks decrypt, and sequence numbers that survive a restart."""

from __future__ import annotations

import asyncio

from confsec.media.endpoint import MediaLeg
from confsec.media.ledger import KeyStreamLedger, StreamId
from confsec.media.srtp import new_master_key, new_receiver, new_sender

SUITE = "AES_CM_128_HMAC_SHA1_80"


def _sid(direction: str, label: str) -> StreamId:
    return StreamId("alice" if direction == "send" else "bob", "x", "audio", direction, label)


def test_rekey_mid_stream_loses_nothing_and_marks_the_new_key() -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        old, new = new_master_key(SUITE), new_master_key(SUITE)
        a = await MediaLeg.open()
        b = await MediaLeg.open(recent_limit=100)
        a.set_remote(b.local_addr)
        b.set_receiver(new_receiver(ledger, _sid("recv", "1"), SUITE, *old))
        a.start_sending(new_sender(ledger, _sid("send", "1"), SUITE, *old), ssrc=7, pps=200)
        await b.wait_for_packets(10, 5, authenticated=True)
        # The receiver learns the new key first; the sender switches a little later.
        b.set_receiver(new_receiver(ledger, _sid("recv", "2"), SUITE, *new), keep_previous=True)
        assert b.first_authenticated_at is None
        await b.wait_for_packets(b.received + 5, 5)
        a.replace_sender(new_sender(ledger, _sid("send", "2"), SUITE, *new))
        await b.wait_for_packets(b.received + 10, 5)
        a.stop_sending()
        s = b.stats
        assert s.auth_failed == 0 and s.authenticated == s.received
        assert b.first_authenticated_at is not None
        assert b.recent is not None and len(b.recent) == min(100, s.received)
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_restarted_stream_continues_its_sequence_numbers() -> None:
    async def main() -> None:
        ledger = KeyStreamLedger()
        key = new_master_key(SUITE)
        a = await MediaLeg.open()
        b = await MediaLeg.open()
        a.set_remote(b.local_addr)
        b.set_receiver(new_receiver(ledger, _sid("recv", ""), SUITE, *key))
        sender = new_sender(ledger, _sid("send", ""), SUITE, *key)
        for _ in range(3):  # a random restart would go back in index and libsrtp would refuse
            a.start_sending(sender, ssrc=9, pps=500, count=10)
            await a.wait_sending_done(5)
        await b.wait_for_packets(30, 5, authenticated=True)
        assert a.send_error is None
        a.close()
        b.close()

    asyncio.run(asyncio.wait_for(main(), 20))
