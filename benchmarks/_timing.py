"""How the scoring benchmarks (P1, P6) time their rows side by side: every row scores every slice of pairs, the
rows in a shuffled order per slice, so a burst of load on the machine falls on every row alike."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import numpy as np

Pairs = list[tuple[str, str]]
Score = Callable[[Pairs], np.ndarray]


def interleaved(
    rows: dict[str, Score], pairs: Pairs, slices: list[list[int]], rounds: int, label: str = ""
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Per round, each row's pairs/s; and each row's values (from the last round). A warm-up first, on a middle
    slice; progress on stderr."""
    rng = random.Random(0)
    for score in rows.values():
        score([pairs[i] for i in slices[len(slices) // 2]])
    rates: dict[str, list[float]] = {name: [] for name in rows}
    values = {name: np.zeros(len(pairs)) for name in rows}
    for round_no in range(rounds):
        spent = dict.fromkeys(rows, 0.0)
        for number, chunk in enumerate(slices):
            names = list(rows)
            rng.shuffle(names)
            for name in names:
                started = time.perf_counter()
                values[name][chunk] = rows[name]([pairs[i] for i in chunk])
                spent[name] += time.perf_counter() - started
            if number % 4 == 3 or number == len(slices) - 1:
                where = f"{label} round" if label else "round"
                print(f"  {where} {round_no + 1}/{rounds}: {number + 1}/{len(slices)} slices", file=sys.stderr)
        for name in rows:
            rates[name].append(len(pairs) / spent[name])
    return rates, values
