"""Key epochs and batching of the reference's rekeyer (confsec/reference/rekey.py), without SIP.

The re-INVITE rounds themselves run end to end in features/r6_rekeying.feature; here the epoch
rules are pinned: a join opens an epoch before the joiner is answered, events inside the window
share one round, and a leaver who saw the pending epoch's key forces a fresh one.
"""

from __future__ import annotations

import asyncio

from confsec.codec.sdp import SessionDescription
from confsec.reference.keys import KeyManager
from confsec.reference.mixer_control import LegSetup, SrtpKeys, StreamSetup
from confsec.reference.rekey import Rekeyer

SUITE = "AES_CM_128_HMAC_SHA1_80"


class _Mixer:
    def __init__(self) -> None:
        self.installed: list[LegSetup] = []

    async def allocate(self, conference_id, leg_id, media):  # pragma: no cover - unused
        return {}

    def install(self, setup: LegSetup) -> None:
        self.installed.append(setup)

    def release(self, conference_id: str, leg_id: str) -> None:
        pass


def _admit(r: Rekeyer, leg: str) -> tuple[int, SrtpKeys]:
    epoch, group, ssrc = r.joining("c", SUITE)
    stream = StreamSetup("common", 0, None, None, group, ssrc, epoch)
    r.admitted("c", leg, leg, None, SessionDescription.build("f", "127.0.0.1"), [stream], epoch)
    return epoch, group


def test_join_opens_an_epoch_before_the_joiner_is_answered() -> None:
    async def main() -> None:
        r = Rekeyer(KeyManager(), _Mixer, window=0.01)
        e1, g1 = _admit(r, "alice")
        e2, g2 = _admit(r, "bob")
        assert (e1, e2) == (1, 2)
        assert g1.key != g2.key and g1.salt != g2.salt
        r.close()

    asyncio.run(main())


def test_joins_inside_the_window_share_one_epoch() -> None:
    async def main() -> None:
        r = Rekeyer(KeyManager(), _Mixer, window=10)
        _admit(r, "alice")
        e2, g2 = _admit(r, "bob")
        e3, g3 = _admit(r, "carol")
        assert e2 == e3 == 2 and g2 == g3
        r.close()

    asyncio.run(main())


def test_a_leaver_who_saw_the_pending_key_forces_a_fresh_epoch() -> None:
    async def main() -> None:
        r = Rekeyer(KeyManager(), _Mixer, window=10)
        _admit(r, "alice")
        _, g2 = _admit(r, "bob")  # pending epoch 2, bob holds it
        r.left("c", "bob")
        e, g, _ = r.joining("c", SUITE)
        assert e == 3 and g.key != g2.key
        r.close()

    asyncio.run(main())


def test_no_rekey_on_join_defect_hands_out_the_old_group_key() -> None:
    async def main() -> None:
        r = Rekeyer(KeyManager(), _Mixer, frozenset({"no-rekey-on-join"}), window=0.01)
        _, g1 = _admit(r, "alice")
        _, g2 = _admit(r, "bob")
        assert g1 == g2
        r.close()

    asyncio.run(main())


def test_rekey_reuses_salt_defect_keeps_the_salt() -> None:
    old = SrtpKeys(SUITE, b"k" * 16, b"s" * 14)
    assert KeyManager().rekey(old).salt != old.salt
    bad = KeyManager(frozenset({"rekey-reuses-salt"})).rekey(old)
    assert bad.salt == old.salt and bad.key != old.key
