"""The parser fuzz (`confsec.fuzz.codecs`) finds its seeds and runs every parser; the mutation
engine reproduces a run from its seed.

A short run: the long one is `python benchmarks/fuzz_codecs.py --inputs 1000000`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from confsec.fuzz.codecs import DIGEST_SEEDS, TARGETS, corpus_for, run
from confsec.fuzz.mutate import mutate

SAMPLES = Path(__file__).resolve().parent.parent / "data"
INPUTS = 300


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_parser_has_seeds_from_the_samples(name: str) -> None:
    corpus = corpus_for(name, SAMPLES)
    if name == "digest.parse":
        assert corpus == DIGEST_SEEDS
    else:
        assert corpus and corpus != DIGEST_SEEDS, f"no sample files for {name} under {SAMPLES}"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_run_neither_crashes_nor_hangs(name: str, tmp_path: Path) -> None:
    crashes: list[str] = []
    result = run(name, INPUTS, 1.0, tmp_path, random.Random(1), SAMPLES, on_crash=crashes.append)
    assert (result.crashes, result.hangs, crashes) == (0, 0, [])
    assert result.inputs == INPUTS
    assert list(tmp_path.iterdir()) == []  # nothing to replay


def test_a_seed_reproduces_the_mutations() -> None:
    seed, corpus = b"INVITE sips:conf@example.test SIP/2.0\r\n\r\n", [b"Via: x\r\n"]
    one, two = random.Random(5), random.Random(5)
    first = [mutate(one, seed, corpus) for _ in range(20)]
    assert first == [mutate(two, seed, corpus) for _ in range(20)]
    assert len(set(first)) > 1 and any(m != seed for m in first)


def test_a_crash_is_told_and_its_input_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parser that raises anything but its own parse error is a crash: counted, told to the
    caller, and the input written for replay."""

    def broken(data: bytes) -> None:
        raise IndexError("out of range")

    monkeypatch.setitem(TARGETS, "digest.parse", (broken, []))
    told: list[str] = []
    result = run("digest.parse", 5, 1.0, tmp_path, random.Random(1), SAMPLES, on_crash=told.append)
    assert result.crashes == 5 and result.parsed == 0
    assert told == ["IndexError: out of range"] * 3  # the first few only
    assert len(list(tmp_path.glob("digest.parse-*.bin"))) == 5
