"""How the scoring benchmarks (P1, P6, the A/B scripts) time their rows side by side: every row scores every slice of
pairs, the rows in a shuffled order per slice, so a burst of load on the machine falls on every row alike; and how
an A/B script (first_token.py, openvino_streams.py) reports a pair of such rows per mode."""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

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


def compared(
    rates: dict[str, list[float]], values: dict[str, np.ndarray], before: str, after: str, keys: tuple[str, str]
) -> dict[str, float]:
    """One mode's A/B from :func:`interleaved`'s rows ``before`` and ``after``: each row's best pairs/s (under
    ``keys[0]``/``keys[1]`` + ``_pairs_per_s``), the median of the per-round ratios after/before (each round timed
    both side by side), and the largest difference between the two rows' values."""
    return {
        f"{keys[0]}_pairs_per_s": round(max(rates[before]), 1),
        f"{keys[1]}_pairs_per_s": round(max(rates[after]), 1),
        "ratio": round(statistics.median(a / b for a, b in zip(rates[after], rates[before], strict=True)), 3),
        "max_abs_logit_diff": float(f"{float(np.max(np.abs(values[after] - values[before]))):.3g}"),
    }


def print_compared(
    cpu: Any, threads: int, result: dict[str, Any], keys: tuple[str, str], headings: tuple[str, str], how: str
) -> None:
    """The table of an A/B script's ``result`` (its ``modes`` made by :func:`compared`, its ``skipped``), under a
    header naming the CPU, its flags and the pairs (``how`` they were tokenized)."""
    print(f"CPU: {cpu.model} ({threads} threads); AVX-512/VNNI/BF16/AMX flags: {cpu.flags_shown()}")
    print(f"{result['pairs']} SciFact pairs, mean {result['mean_tokens']} tokens, {how}")
    widths = [max(len(h) + 2, 11) for h in headings]
    print(f"{'mode':<15}{headings[0]:>{widths[0]}}{headings[1]:>{widths[1]}}{'ratio':>8}{'largest logit diff':>20}")
    for r in result["modes"]:
        print(
            f"{r['mode']:<15}{r[f'{keys[0]}_pairs_per_s']:>{widths[0]}.1f}{r[f'{keys[1]}_pairs_per_s']:>{widths[1]}.1f}"
            f"{r['ratio']:>7.3f}x{r['max_abs_logit_diff']:>20.2g}"
        )
    for mode, why in result["skipped"].items():
        print(f"{mode}: not timed ({why})")
