"""The score cache: a hit is the very float the model computed, the bound holds, one model's or mode's scores
never answer for another's, and the stand-in counts hits and misses on /metrics and /ping while answering
exactly as it does without the cache."""

from __future__ import annotations

import numpy as np
import requests

from osrerank.score_cache import ENTRY_BYTES, ScoreCache
from osrerank.scorer import ModelOptions, PairScorer, load_scorer
from osrerank.server.app import create_app

from ..conftest import ServerThread

PAIRS = [
    ("How do volcanoes erupt?", "magma rises through the crust"),
    ("How do volcanoes erupt?", "bees gather nectar from flowers"),
    ("Why is the sky blue?", "sunlight scatters off air molecules " * 400),  # truncated
    ("Why is the sky blue?", None),
]


def test_a_cached_score_is_the_computed_float_and_only_misses_reach_the_model(tiny_model_dir):
    cached = load_scorer(tiny_model_dir, cache_mb=1)
    plain = load_scorer(tiny_model_dir)
    first = cached.score(PAIRS)
    calls: list[int] = []
    run = cached.run
    cached.run = lambda items: calls.append(len(items)) or run(items)  # type: ignore[method-assign]
    again = cached.score([*PAIRS[::-1], ("What do bees make?", "honey")])
    assert calls == [1]  # only the new pair was scored
    assert again.values[:4].tobytes() == first.values[::-1].tobytes()  # bit for bit
    assert again.truncated[:4].tolist() == first.truncated[::-1].tolist() == [False, True, False, False]
    np.testing.assert_array_equal(first.values, plain.score(PAIRS).values)
    assert (cached.cache.stats.hits, cached.cache.stats.misses) == (4, 5)


def test_the_bound_holds_and_the_least_recently_used_go_first():
    cache = ScoreCache(10 * ENTRY_BYTES / 2**20, ["model", "fp32", "512"])
    assert cache.stats.capacity == 10
    pairs = [(f"q{i}", "d") for i in range(25)]
    found = cache.lookup(pairs[:10])
    cache.fill(found, np.arange(10.0), np.zeros(10, dtype=bool))
    cache.lookup([pairs[0]])  # touched: now the most recent
    found = cache.lookup(pairs[10:15])
    cache.fill(found, np.arange(5.0), np.zeros(5, dtype=bool))
    assert cache.stats.entries == 10 and cache.stats.evictions == 5
    assert cache.lookup([pairs[0]]).missing == []
    assert cache.lookup([pairs[1]]).missing == [0]  # evicted
    assert cache.stats.bytes <= 10 * ENTRY_BYTES


def test_keys_separate_models_modes_lengths_and_texts():
    a, b = ScoreCache(1, ["m", "fp32", "512"]), ScoreCache(1, ["m", "bf16", "512"])
    assert a.key(("q", "d")) != b.key(("q", "d"))
    assert ScoreCache(1, ["m", "fp32", "128"]).key(("q", "d")) != a.key(("q", "d"))
    assert a.key(("ab", "c")) != a.key(("a", "bc"))  # lengths are part of the key
    assert a.key(("q", None)) != a.key(("q", ""))  # no document (the query alone) is not an empty one
    assert a.key(("\ud800", "d")) != a.key(("?", "d"))  # lone surrogates hash, distinctly


def test_off_keeps_nothing_and_hashes_nothing():
    cache = ScoreCache(0, ["m"])
    found = cache.lookup(PAIRS)
    assert not cache.enabled and found.missing == [0, 1, 2, 3] and found.keys == []
    cache.fill(found, np.ones(4), np.zeros(4, dtype=bool))
    assert cache.stats.entries == 0 and found.values.tolist() == [1.0] * 4


def _invoke(server, pairs):
    body = {"inputs": [{"text": q, "text_pair": d or ""} for q, d in pairs], "parameters": {"truncation": True}}
    reply = requests.post(f"{server.url}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return [r["score"] for r in reply.json()]


def _metrics(server) -> dict[str, float]:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("osrerank_score")}


def test_the_stand_in_answers_alike_with_the_cache_on_and_off_and_counts(tiny_model_dir):
    on, off = load_scorer(tiny_model_dir, cache_mb=1), load_scorer(tiny_model_dir)
    with ServerThread(create_app(on)) as cached, ServerThread(create_app(off)) as plain:
        expected = _invoke(plain, PAIRS)
        assert _invoke(cached, PAIRS) == expected
        assert _invoke(cached, PAIRS) == expected  # all hits
        assert _invoke(cached, [*PAIRS[:2], ("new query", "new text")])[:2] == expected[:2]
        figures = _metrics(cached)
        assert figures["osrerank_score_cache_hits_total"] == 6
        assert figures["osrerank_score_cache_misses_total"] == 5
        assert figures["osrerank_score_cache_entries"] == 5
        ping = requests.get(f"{cached.url}/ping", timeout=10).json()["score_cache"]
        assert (ping["hits"], ping["misses"], ping["mb"]) == (6, 5, 1.0)
        assert _metrics(plain)["osrerank_score_cache_capacity_entries"] == 0


def test_a_truncated_pair_from_the_cache_is_still_refused_without_truncation(tiny_model_dir):
    with ServerThread(create_app(load_scorer(tiny_model_dir, cache_mb=1))) as server:
        _invoke(server, PAIRS)  # cached, truncated flag with it
        body = {"inputs": [{"text": PAIRS[2][0], "text_pair": PAIRS[2][1]}]}
        reply = requests.post(f"{server.url}/invocations", json=body, timeout=60)
        assert reply.status_code == 400 and "longer than the model's maximum" in reply.text


def test_the_query_alone_and_an_empty_document_are_cached_apart(tiny_model_dir):
    """The SageMaker route scores a pair without a document as the query alone (as the HF pipeline does), the
    other routes an empty document: two scores, which the cache must not mix up whichever comes first."""
    options = ModelOptions(path=str(tiny_model_dir))
    plain = PairScorer(tiny_model_dir, options)
    alone, empty = (
        plain.score([("capital of the United States", None)]).values,
        plain.score([("capital of the United States", "")]).values,
    )
    assert alone[0] != empty[0]
    cached = PairScorer(tiny_model_dir, options, cache_mb=1)
    assert cached.score([("capital of the United States", "")]).values[0] == empty[0]
    assert cached.score([("capital of the United States", None)]).values[0] == alone[0]
