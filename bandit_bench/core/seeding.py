"""Stable per-episode seeds.

An episode's randomness depends only on (base seed, instance key, episode index), hashed with
BLAKE2b (Python's ``hash()`` is salted per process) into a ``numpy.random.SeedSequence``. The
same episode therefore gets the same instance, reward table and harness draws in any process,
in any order, for every model: comparisons between models are paired (common random numbers).
"""

from __future__ import annotations

import hashlib

import numpy as np

# Child streams spawned from an episode's SeedSequence, by purpose. Fixed positions keep each
# stream stable when another purpose is added at the end.
_INSTANCE, _HARNESS, _POLICY = 0, 1, 2


def _key_words(key: str) -> list[int]:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def episode_seed_sequence(base_seed: int, key: str, episode: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([base_seed, *_key_words(key), episode])


def episode_streams(base_seed: int, key: str, episode: int) -> tuple[np.random.Generator, ...]:
    """(instance, harness, policy) generators of one episode."""
    children = episode_seed_sequence(base_seed, key, episode).spawn(3)
    return tuple(np.random.default_rng(c) for c in children)


def api_seed(base_seed: int, key: str, episode: int) -> int:
    """The ``seed`` sent to the API: a stable 31-bit integer per episode."""
    return int(episode_seed_sequence(base_seed, key, episode).generate_state(1)[0] & 0x7FFFFFFF)
