"""MediaLeg.reset_audio(): a listening window hears only what arrives after it starts."""

from __future__ import annotations

import asyncio

from confsec.media.endpoint import MediaLeg
from confsec.media.tone import ToneGenerator, tone_for


def test_a_fresh_window_forgets_the_tone_heard_before() -> None:
    first, second = tone_for(0), tone_for(1)

    async def main() -> tuple[set[float], set[float], set[float]]:
        a = await MediaLeg.open()
        b = await MediaLeg.open()
        a.set_remote(b.local_addr)
        a.start_sending(None, ssrc=1, frames=ToneGenerator(first).frames(), count=25)
        await b.wait_for_packets(25, timeout=5)
        before = b.heard_tones([first, second])
        b.reset_audio()
        emptied = b.heard_tones([first, second])
        a.start_sending(None, ssrc=1, frames=ToneGenerator(second).frames(), count=25)
        await b.wait_for_packets(50, timeout=5)
        after = b.heard_tones([first, second], seconds=5.0)
        a.close()
        b.close()
        return before, emptied, after

    before, emptied, after = asyncio.run(asyncio.wait_for(main(), 15))
    assert before == {first}
    assert emptied == set()
    assert after == {second}  # without the reset, 5 s of audio would still hold the first
