"""Scores of (query, document) pairs already scored, kept within a memory bound: search traffic repeats its
head queries, and a repeated search would otherwise pay the model again for the same window.

A pair is keyed by a 128-bit BLAKE2b digest of the scorer's identity (model graph digest, precision mode, max
length: one cache never serves another model's or mode's scores) and the exact texts, so the cache keeps no
text. What is stored is the raw score as the model computed it (and whether the pair was truncated): a hit
returns that float64 unchanged. The least recently used entries go first once the bound is reached; the bound
counts every byte an entry holds in Python (measured by ``benchmarks/replay_zipf.py`` as RSS).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ENTRY_BYTES", "CacheStats", "Lookup", "ScoreCache"]

Pair = tuple[str, str | None]
_KEY = 16
#: What one entry costs in memory: its 16-byte key, its (score, truncated) tuple and float, and its share of the
#: ordered dict's table and links: 234 bytes measured with tracemalloc over 100,000 entries (CPython 3.11).
ENTRY_BYTES = 240


@dataclass(frozen=True)
class Lookup:
    """One request's pairs against the cache: their keys, the scores and truncation flags (filled for the
    hits, then by :meth:`ScoreCache.fill` for the rest), and the indices of the pairs the model must score."""

    keys: list[bytes]
    values: np.ndarray
    truncated: np.ndarray
    missing: list[int]


@dataclass
class CacheStats:
    """Counters exposed on /metrics and /ping."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    capacity: int = 0

    @property
    def bytes(self) -> int:
        return self.entries * ENTRY_BYTES


class ScoreCache:
    """A bounded, thread-safe map from pair to (raw score, truncated). ``megabytes`` 0 keeps nothing."""

    def __init__(self, megabytes: float, identity: Sequence[str]) -> None:
        self._salt = "\x1f".join(identity).encode()
        self._entries: OrderedDict[bytes, tuple[float, bool]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats(capacity=int(megabytes * 1024 * 1024) // ENTRY_BYTES)

    @property
    def enabled(self) -> bool:
        return self.stats.capacity > 0

    def key(self, pair: Pair) -> bytes:
        query, document = pair
        digest = hashlib.blake2b(self._salt, digest_size=_KEY)
        for text in (query, document):
            if text is None:  # no document (the query scored alone) is not an empty one: another score
                digest.update(b"\xff" * 8)
                continue
            raw = text.encode("utf-8", "surrogatepass")
            digest.update(len(raw).to_bytes(8, "little"))
            digest.update(raw)
        return digest.digest()

    def lookup(self, pairs: Sequence[Pair]) -> Lookup:
        """The cached scores of ``pairs`` and which are missing (all of them when the cache is off)."""
        found = Lookup([], np.zeros(len(pairs), dtype=np.float64), np.zeros(len(pairs), dtype=bool), [])
        if not self.enabled:
            found.missing.extend(range(len(pairs)))
            return found
        found.keys.extend(self.key(p) for p in pairs)
        with self._lock:
            for i, key in enumerate(found.keys):
                entry = self._entries.get(key)
                if entry is None:
                    found.missing.append(i)
                    continue
                self._entries.move_to_end(key)
                found.values[i], found.truncated[i] = entry
            self.stats.hits += len(pairs) - len(found.missing)
            self.stats.misses += len(found.missing)
        return found

    def fill(self, found: Lookup, values: np.ndarray, truncated: np.ndarray) -> None:
        """Put the scores of ``found``'s missing pairs (in their order) in place, and keep them."""
        found.values[found.missing], found.truncated[found.missing] = values, truncated
        if not self.enabled or not found.missing:
            return
        with self._lock:
            for i, value, cut in zip(found.missing, values.tolist(), truncated.tolist(), strict=True):
                self._entries[found.keys[i]] = (value, cut)
                self._entries.move_to_end(found.keys[i])
            overflow = max(0, len(self._entries) - self.stats.capacity)
            for _ in range(overflow):
                self._entries.popitem(last=False)
            self.stats.evictions += overflow
            self.stats.entries = len(self._entries)
