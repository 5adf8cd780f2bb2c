"""PCMU, the tone generator, the Goertzel detector and the tone plan."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from confsec.errors import ConfigError
from confsec.media.tone import (
    MAX_TONES,
    PCMU_SILENCE,
    ToneGenerator,
    detect_tones,
    pcmu_decode,
    pcmu_encode,
    tone_for,
    tones_present,
)

PLAN = [tone_for(k) for k in range(50)]


def goertzel_scalar(x: np.ndarray, freq: float, rate: int) -> float:
    """Textbook Goertzel recursion on a Hann-windowed signal, normalised like detect_tones."""
    w = np.hanning(len(x))
    xw = x * w
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in xw:
        s1, s2 = v + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * power / w.sum() ** 2


def mix(freqs, seconds=1.0, amplitude=3000.0) -> np.ndarray:
    """A mix as a receiver decodes it: sum, clip, PCMU, back to linear."""
    total = np.zeros(int(8000 * seconds), dtype=np.int64)
    for f in freqs:
        total += ToneGenerator(f, amplitude=amplitude).pcm_seconds(seconds)
    return pcmu_decode(pcmu_encode(np.clip(total, -32768, 32767).astype(np.int16)))


# -- PCMU --------------------------------------------------------------------------------------


def test_pcmu_known_values() -> None:
    samples = np.array([0, -1, 32767, -32768, 8159, -8159], dtype=np.int16)
    assert pcmu_encode(samples) == bytes([0xFF, 0x7F, 0x80, 0x00, 0x80 + 0x1F, 0x1F])
    assert pcmu_decode(bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [0, 0, 32124, -32124]


def test_pcmu_every_code_round_trips() -> None:
    codes = bytes(range(256))
    again = pcmu_encode(pcmu_decode(codes))
    # 0x7F is "negative zero": it decodes to 0, which encodes as 0xFF.
    assert [i for i in range(256) if again[i] != codes[i]] == [0x7F]


def test_pcmu_error_is_within_one_step() -> None:
    x = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    y = pcmu_decode(pcmu_encode(x)).astype(np.int32)
    err = np.abs(y - x.astype(np.int32))
    # Quantisation step grows with magnitude: 1/16 of the segment; at most ~1/32 relative.
    assert np.all(err <= np.maximum(8, np.abs(x.astype(np.int32)) // 16 + 8))


def test_pcmu_agrees_with_audioop() -> None:
    """An independent G.711 (CPython's audioop, gone in 3.13) where the stdlib still has it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    theirs = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype=np.int16)
    assert np.array_equal(pcmu_decode(codes), theirs)
    x = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    mine = np.frombuffer(pcmu_encode(x), dtype=np.uint8).astype(np.int32)
    other = np.frombuffer(audioop.lin2ulaw(x.tobytes(), 2), dtype=np.uint8).astype(np.int32)
    # Identical for x >= 0; audioop rounds negative samples towards -inf before dropping two
    # bits, so a few negative values on a step boundary land one code away.
    assert np.array_equal(mine[x >= 0], other[x >= 0])
    assert np.all(np.abs(mine - other) <= 1)
    assert np.count_nonzero(mine != other) < 400


def test_silence_code() -> None:
    assert pcmu_encode(np.zeros(4, dtype=np.int16)) == bytes([PCMU_SILENCE]) * 4


# -- generator ---------------------------------------------------------------------------------


def test_generator_frames() -> None:
    gen = ToneGenerator(440)
    frames = [next(gen) for _ in range(3)]
    assert all(len(f) == 160 for f in frames)
    assert gen.samples_per_frame == 160 and iter(gen) is gen


def test_generator_is_phase_continuous() -> None:
    gen = ToneGenerator(440, amplitude=10000)
    joined = np.concatenate([gen.next_pcm() for _ in range(50)]).astype(np.float64)
    n = np.arange(joined.size)
    ideal = 10000 * np.sin(2 * np.pi * 440 * n / 8000)
    assert np.max(np.abs(joined - ideal)) <= 1.0


def test_generator_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        ToneGenerator(5000)
    with pytest.raises(ConfigError):
        ToneGenerator(440, frame_ms=3, sample_rate=8000 + 1)
    with pytest.raises(ConfigError):
        ToneGenerator([440, 660], amplitude=20000)


# -- detector ----------------------------------------------------------------------------------


def test_vectorised_matches_scalar_goertzel() -> None:
    x = mix([440, 1000], seconds=0.25).astype(np.float64)
    x -= x.mean()
    total = float(np.mean(x * x))
    got = detect_tones(x, [440, 700, 1000])
    for f in (440, 700, 1000):
        assert got[f] == pytest.approx(goertzel_scalar(x, f, 8000) / total, rel=1e-6, abs=1e-12)


def test_pure_tone_has_ratio_one() -> None:
    r = detect_tones(mix([440]), [440.0, 660.0, 880.0])
    assert r[440.0] == pytest.approx(1.0, abs=0.01)
    assert r[660.0] < 1e-4 and r[880.0] < 1e-4


@pytest.mark.parametrize(
    ("present", "absent"),
    [
        ([440, 660], [880]),
        ([350, 1210, 2470], [440, 880, 3000]),
        ([tone_for(0), tone_for(1), tone_for(2), tone_for(3)], [tone_for(4), tone_for(49)]),
    ],
)
def test_hears_the_mix_but_not_the_others(present, absent) -> None:
    pcm = mix(present)
    heard = tones_present(pcm, present + absent)
    assert heard == {float(f) for f in present}
    ratios = detect_tones(pcm, present + absent)
    for f in present:
        assert ratios[f] == pytest.approx(1 / len(present), rel=0.1)


def test_silence_hears_nothing() -> None:
    silence = pcmu_decode(bytes([PCMU_SILENCE]) * 8000)
    assert detect_tones(silence, [440, 660]) == {440.0: 0.0, 660.0: 0.0}
    assert tones_present(np.zeros(8000, dtype=np.int16), PLAN) == set()
    assert detect_tones(np.zeros(0), [440]) == {440.0: 0.0}
    assert detect_tones(np.zeros(100), []) == {}


def test_tone_then_silence_still_heard() -> None:
    half = mix([660], seconds=0.5)
    pcm = np.concatenate([half, np.zeros(4000, dtype=np.int16)])
    assert tones_present(pcm, [440, 660, 880]) == {660.0}


def test_quiet_tone_under_loud_one() -> None:
    loud = ToneGenerator(440, amplitude=12000).pcm_seconds(1).astype(np.int32)
    quiet = ToneGenerator(1001, amplitude=1500).pcm_seconds(1).astype(np.int32)
    pcm = pcmu_decode(pcmu_encode((loud + quiet).astype(np.int16)))
    assert tones_present(pcm, [440, 1001, 1500, 2000]) == {440.0, 1001.0}


def test_detector_rejects_two_channels() -> None:
    with pytest.raises(ConfigError):
        detect_tones(np.zeros((2, 100)), [440])


# -- tone plan ---------------------------------------------------------------------------------


def test_plan_is_in_band_distinct_and_separated() -> None:
    plan = sorted(tone_for(k) for k in range(MAX_TONES))
    assert len(set(plan)) == MAX_TONES
    assert plan[0] >= 300 and plan[-1] <= 3400
    assert min(b - a for a, b in itertools.pairwise(plan)) >= 30
    with pytest.raises(ConfigError):
        tone_for(MAX_TONES)
    with pytest.raises(ConfigError):
        tone_for(-1)


def test_plan_harmonics_avoid_other_tones() -> None:
    first = [tone_for(k) for k in range(50)]
    for f in first:  # every harmonic below Nyquist
        for h in range(2, int(4000 // f) + 1):
            assert min(abs(h * f - g) for g in first) >= 5, (f, h)
    plan = [tone_for(k) for k in range(MAX_TONES)]
    for f in plan:  # the strong low harmonics, across both halves
        for h in range(2, 6):
            assert min(abs(h * f - g) for g in plan) >= 5, (f, h)


def test_fifty_way_mix_each_missing_one_is_detected() -> None:
    """Fifty participants; each hears the other 49 and not itself, after PCMU, over 1 s."""
    tracks = np.stack(
        [ToneGenerator(f, amplitude=600).pcm_seconds(1.0).astype(np.int64) for f in PLAN]
    )
    total = tracks.sum(axis=0)
    for me in (0, 17, 49):
        pcm = pcmu_decode(pcmu_encode(np.clip(total - tracks[me], -32768, 32767).astype(np.int16)))
        ratios = detect_tones(pcm, PLAN)
        heard = {f for f, r in ratios.items() if r >= 0.005}
        assert heard == set(PLAN) - {PLAN[me]}
        others = [r for f, r in ratios.items() if f != PLAN[me]]
        assert min(others) > 0.015 and ratios[PLAN[me]] < 0.001


def test_frames_is_the_generator() -> None:
    gen = ToneGenerator(440)
    assert gen.frames() is gen and len(next(gen.frames())) == 160
