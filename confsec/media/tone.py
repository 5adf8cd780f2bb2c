"""Test tones: G.711 µ-law (PCMU), a phase-continuous tone generator and a Goertzel detector.

A conference check is "each participant hears the others and not itself": participant k sends
the tone `tone_for(k)`, and each receiver asks `detect_tones()` which of the expected tones are in
what it decoded. This works through a mixer (one stream, many tones) as well as through a
forwarder (one stream per talker), and survives PCMU's quantisation, jitter and a lost packet,
unlike a bit-exact comparison.

Everything is numpy and vectorised; nothing here knows about sockets or clocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import lru_cache

import numpy as np

from confsec.errors import ConfigError

__all__ = [
    "MAX_TONES",
    "PCMU_SILENCE",
    "ToneGenerator",
    "detect_tones",
    "pcmu_decode",
    "pcmu_encode",
    "tone_for",
    "tones_present",
]

# -- G.711 µ-law ------------------------------------------------------------------------------

_BIAS = 0x84
_CLIP = 32635

#: The µ-law octet for zero (what a silent PCMU payload is full of).
PCMU_SILENCE = 0xFF


def _build_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_encode_table() -> np.ndarray:
    # Index: the int16 sample reinterpreted as uint16 (so that encoding is one take()).
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _CLIP) + _BIAS  # 132 .. 32767
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7  # 0 .. 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


_DECODE = _build_decode_table()
_ENCODE = _build_encode_table()


def pcmu_encode(pcm: np.ndarray) -> bytes:
    """16-bit linear samples -> PCMU octets (ITU-T G.711 µ-law, the RTP payload type 0)."""
    samples = np.ascontiguousarray(pcm, dtype=np.int16)
    return _ENCODE[samples.view(np.uint16)].tobytes()


def pcmu_decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """PCMU octets -> 16-bit linear samples (int16 array)."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]


# -- generator ---------------------------------------------------------------------------------


class ToneGenerator:
    """Yields PCMU frames of one or more sine tones, continuous in phase across frames.

    Phase continuity matters: a phase jump at every 20 ms frame would smear the tone's energy
    over neighbouring frequencies and could make a receiver "hear" a neighbour's tone.
    """

    def __init__(
        self,
        freq_hz: float | Sequence[float],
        sample_rate: int = 8000,
        frame_ms: int = 20,
        amplitude: float = 4000.0,
    ) -> None:
        freqs = (
            [float(freq_hz)] if isinstance(freq_hz, int | float) else [float(f) for f in freq_hz]
        )
        if any(not 0 < f < sample_rate / 2 for f in freqs):
            raise ConfigError(f"tone frequencies {freqs} must lie in (0, {sample_rate / 2}) Hz")
        if sample_rate * frame_ms % 1000:
            raise ConfigError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        if not 0 <= amplitude * len(freqs) <= 32767:
            raise ConfigError(f"amplitude {amplitude} x {len(freqs)} tones would clip")
        self.freqs = tuple(freqs)
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.amplitude = amplitude
        self.samples_per_frame = sample_rate * frame_ms // 1000
        self._step = np.array([2 * math.pi * f / sample_rate for f in freqs])
        self._phase = np.zeros(len(freqs))
        self._ramp = np.arange(self.samples_per_frame, dtype=np.float64)

    def __repr__(self) -> str:
        return f"ToneGenerator({', '.join(f'{f:g}' for f in self.freqs)} Hz)"

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return pcmu_encode(self.next_pcm())

    def frames(self) -> Iterator[bytes]:
        """The endless iterator of PCMU frames (the generator itself), for `start_sending()`."""
        return self

    def next_pcm(self) -> np.ndarray:
        """The next frame as int16 linear samples (to mix before encoding)."""
        return self._samples(self._ramp)

    def pcm_seconds(self, seconds: float) -> np.ndarray:
        """The next `seconds` of audio in one array (for tests and mixers); phase carries on."""
        return self._samples(np.arange(round(seconds * self.sample_rate), dtype=np.float64))

    def _samples(self, ramp: np.ndarray) -> np.ndarray:
        angles = self._phase[:, None] + self._step[:, None] * ramp[None, :]
        out = self.amplitude * np.sin(angles).sum(axis=0)
        self._phase = (self._phase + self._step * ramp.size) % (2 * math.pi)
        return np.rint(out).astype(np.int16)


# -- tone plan ---------------------------------------------------------------------------------

#: How many participants `tone_for()` can tell apart.
MAX_TONES = 100


def tone_for(index: int) -> float:
    """The tone participant `index` sends: well apart from every other, inside 300-3400 Hz.

    The first 50 are 310 + 61 k Hz: as 310 = 5 (mod 61), every harmonic of one of them (µ-law
    and a clipping mixer make harmonics) falls at least 5 Hz from every other tone of the 50.
    The next 50 sit half-way between (340.5 + 61 k Hz, 30.5 Hz from their neighbours); their
    2nd to 5th harmonics also stay 5 Hz or more from every tone. Over one second a
    Hann-windowed Goertzel resolves about 2 Hz (4 Hz over half a second), so all are separable.
    """
    if not 0 <= index < MAX_TONES:
        raise ConfigError(f"the tone plan covers participants 0..{MAX_TONES - 1}, not {index}")
    if index < 50:
        return 310.0 + 61.0 * index
    return 340.5 + 61.0 * (index - 50)


# -- detector ----------------------------------------------------------------------------------

# Below this RMS (in 16-bit units) a signal is silence: ratios would be noise over noise.
_SILENCE_RMS = 4.0
# Phasor matrices up to this many elements are cached (16 MiB of complex128).
_CACHE_ELEMENTS = 1 << 20


def _phasors(freqs: tuple[float, ...], n: int, sample_rate: int) -> np.ndarray:
    window = np.hanning(n)
    omega = 2 * np.pi * np.asarray(freqs) / sample_rate
    matrix = np.exp(-1j * np.outer(omega, np.arange(n))) * window[None, :]
    # Normalise so that a sine of amplitude A gives |X|^2 = A^2 / 2, its power.
    return matrix * (math.sqrt(2) / window.sum())


_cached_phasors = lru_cache(maxsize=4)(_phasors)


def detect_tones(
    pcm: np.ndarray, candidates: Sequence[float], sample_rate: int = 8000
) -> dict[float, float]:
    """For each candidate frequency, the share of the signal's power at that frequency.

    A pure tone gives about 1.0 at its frequency; a mix of k equal tones about 1/k each;
    a frequency that is absent gives orders of magnitude less (about 2e-4 from PCMU's
    quantisation noise over one second). Silence gives 0.0 everywhere.

    This is the Goertzel algorithm evaluated for all candidates at once: Goertzel's recursion
    computes one DFT term per frequency, sample by sample, which in numpy is fastest written as
    that DFT term directly, a (candidates x samples) phasor matrix times the Hann-windowed
    signal (the tests check it against the scalar recursion).
    """
    x = np.asarray(pcm, dtype=np.float64)
    if x.ndim != 1:
        raise ConfigError("detect_tones() takes one channel of samples")
    freqs = tuple(float(f) for f in candidates)
    if not freqs:
        return {}
    n = x.size
    if n < 2:
        return dict.fromkeys(freqs, 0.0)
    x = x - x.mean()
    total = float(np.mean(x * x))
    if total < _SILENCE_RMS**2:
        return dict.fromkeys(freqs, 0.0)
    if len(freqs) * n <= _CACHE_ELEMENTS:
        matrix = _cached_phasors(freqs, n, sample_rate)
    else:
        matrix = _phasors(freqs, n, sample_rate)
    power = np.abs(matrix @ x) ** 2
    return {f: float(p) / total for f, p in zip(freqs, power, strict=True)}


def tones_present(
    pcm: np.ndarray,
    candidates: Sequence[float],
    min_ratio: float = 0.005,
    sample_rate: int = 8000,
) -> set[float]:
    """The candidates heard: those whose share of the power is at least `min_ratio`.

    0.005 sits well below a tone's share in a 50-way mix (0.02) and far above an absent
    tone's (< 0.001 with PCMU).
    """
    return {f for f, r in detect_tones(pcm, candidates, sample_rate).items() if r >= min_ratio}
