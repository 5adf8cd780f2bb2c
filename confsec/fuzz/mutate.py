"""The mutation engine both fuzzers share: small, random edits of a valid input.

Mutating real inputs (rather than generating random bytes) keeps most of a message intact, so a
mutation gets past the first bytes a parser checks and reaches the deeper code: the header
grammar, the length fields, the attribute decoders, the handlers behind the parser.
"""

from __future__ import annotations

import random

DELIMITERS = (0, 10, 13, 32, 58, 59, 44, 34, 60, 62, 255)
"""Bytes that mean something to the text grammars (NUL, LF, CR, SP, ':', ';', ',', '"', '<',
'>') and one that is never valid UTF-8: inserted one at a time, they split or join tokens."""


def mutate(rng: random.Random, seed: bytes, corpus: list[bytes]) -> bytes:
    """One to six edits of `seed`: bit flips, delimiter insertions, deletions, truncations,
    splices of a chunk of another `corpus` input, repeated chunks (which overrun length fields
    and nest grouped attributes) and random bytes. Deterministic for a given `rng` state, so a
    seed reproduces a run."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = bytes([rng.choice(DELIMITERS)])
        elif op == 2 and data:
            del data[pos : pos + rng.randint(1, 16)]
        elif op == 3:
            del data[pos:]
        elif op == 4:
            other = rng.choice(corpus)
            start = rng.randrange(len(other) + 1)
            data[pos:pos] = other[start : start + rng.randint(1, 64)]
        elif op == 5 and data:
            chunk = data[pos : pos + rng.randint(1, 32)]
            data[pos:pos] = chunk * rng.randint(2, 50)
        elif op == 6:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)
