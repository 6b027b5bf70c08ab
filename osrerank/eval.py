"""Step: relevance evaluation on a BEIR-format folder, BM25 alone vs BM25 + the rerank pipeline.

The corpus goes into its own index with ``title``, ``text`` and ``rerank_text`` (title + ". " + text,
one field so the reranker sees a separator; the rerank processor concatenates several
``document_fields`` with none). Each query runs twice: BM25 on ``rerank_text`` for ``top_k`` hits
(as Anserini's BEIR baseline searches title + text), and the same request through a rerank
pipeline over those ``top_k`` hits. Metrics come from ``ir-measures``: nDCG@10, RR@10 (MRR@10),
R@100.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Settings
from .errors import ConfigError, ToolMissingError
from .ingest import RERANK_FIELD, count_lines, load_jsonl, read_jsonl
from .opensearch import Cluster
from .pipeline import ensure_pipeline, render_pipeline
from .search import search_body

__all__ = [
    "MEASURES",
    "RERANK_FIELD",
    "Arm",
    "EvalResult",
    "compute_metrics",
    "ensure_corpus",
    "ensure_eval_pipeline",
    "load_qrels",
    "load_queries",
    "run_eval",
]

MEASURES = ("nDCG@10", "RR@10", "R@100")


@dataclass
class Arm:
    """One way of searching: its metrics and per-query latencies (ms, as measured by the client)."""

    metrics: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    #: query id -> [(document id, score)] in the order the search returned them
    run: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def trec_run(self, tag: str) -> str:
        """The run in TREC format (``qid Q0 docid rank score tag``), readable by trec_eval and ir_measures."""
        return "".join(
            f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n"
            for qid, hits in self.run.items()
            for rank, (doc, score) in enumerate(hits, 1)
        )

    def latency_summary(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        p50, p95, p99 = np.percentile(self.latencies_ms, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": statistics.fmean(self.latencies_ms)}


@dataclass
class EvalResult:
    dataset: str
    split: str
    queries: int
    documents: int
    top_k: int
    model: str
    kind: str
    bm25: str
    wall_s: float
    arms: dict[str, Arm]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name, arm in self.arms.items():
            data["arms"][name] = {"metrics": arm.metrics, "latency_ms": arm.latency_summary()}
        return data


# ----------------------------------------------------------------------------- BEIR files
def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id  corpus-id  score`` TSV with a header; CRLF line endings are fine."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist: a BEIR folder has qrels/<split>.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows, None)
        if not header or header[0].strip() != "query-id":
            raise ConfigError(f"{path}: expected the header query-id, corpus-id, score")
        for row in rows:
            if len(row) >= 3:
                qrels.setdefault(row[0].strip(), {})[row[1].strip()] = int(row[2].strip())
    return qrels


def load_queries(path: Path) -> dict[str, str]:
    return {str(q["_id"]): q["text"] for q in read_jsonl(path)}


# ----------------------------------------------------------------------------- metrics
def compute_metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean nDCG@10, RR@10, R@100 over the queries of ``qrels`` (a query with no hits counts as 0)."""
    try:
        import ir_measures
    except ImportError:
        raise ToolMissingError("osrerank eval needs: pip install 'osrerank[eval]'") from None
    measures = [ir_measures.parse_measure(m) for m in MEASURES]
    per_query: dict[str, dict[str, float]] = {m: {} for m in MEASURES}
    for metric in ir_measures.iter_calc(measures, qrels, run):
        per_query[str(metric.measure)][metric.query_id] = metric.value
    return {m: sum(per_query[m].get(q, 0.0) for q in qrels) / len(qrels) for m in MEASURES} if qrels else {}


# ----------------------------------------------------------------------------- the run
def run_eval(
    cluster: Cluster,
    settings: Settings,
    model_id: str,
    dataset: Path,
    *,
    split: str = "test",
    top_k: int = 100,
    max_queries: int | None = None,
    progress: Callable[[str, int, int], None] = lambda *_: None,
) -> EvalResult:
    """Index (once), then run every judged query through both arms and score them."""
    started = time.perf_counter()
    corpus_path, queries_path = dataset / "corpus.jsonl", dataset / "queries.jsonl"
    for p in (corpus_path, queries_path):
        if not p.exists():
            raise ConfigError(f"{p} does not exist: --dataset must be a BEIR folder (corpus.jsonl, queries.jsonl)")
    qrels = load_qrels(dataset / "qrels" / f"{split}.tsv")
    queries = load_queries(queries_path)
    judged = [q for q in qrels if q in queries]
    if max_queries:
        judged = judged[:max_queries]
    qrels = {q: qrels[q] for q in judged}

    index = settings.eval_index(dataset.name)
    documents = ensure_corpus(cluster, index, corpus_path, progress)
    pipeline = ensure_eval_pipeline(cluster, settings, model_id)

    arms = {"bm25": Arm(), "bm25+rerank": Arm()}
    timeout = settings.timeout_s + 30
    for n, qid in enumerate(judged, 1):
        for arm, params in (("bm25", {}), ("bm25+rerank", {"search_pipeline": pipeline})):
            body = search_body(queries[qid], (RERANK_FIELD,), top_k, rerank=bool(params), source=[RERANK_FIELD])
            t0 = time.perf_counter()
            reply = cluster.call("POST", f"/{index}/_search", body, params=params, timeout=timeout)
            arms[arm].latencies_ms.append((time.perf_counter() - t0) * 1000)
            arms[arm].run[qid] = [(h["_id"], float(h["_score"])) for h in reply["hits"]["hits"]]
        progress("queries", n, len(judged))
    for arm in arms:
        arms[arm].metrics = compute_metrics(qrels, {q: dict(hits) for q, hits in arms[arm].run.items()})
    return EvalResult(
        dataset=str(dataset),
        split=split,
        queries=len(judged),
        documents=documents,
        top_k=top_k,
        model=settings.model,
        kind=settings.kind,
        bm25="OpenSearch default BM25 (k1=1.2, b=0.75) on title + text",
        wall_s=time.perf_counter() - started,
        arms=arms,
    )


def ensure_eval_pipeline(cluster: Cluster, settings: Settings, model_id: str) -> str:
    """A rerank pipeline over ``rerank_text`` for the model; returns its name."""
    name = settings.eval_pipeline
    eval_settings = settings.model_copy(update={"document_fields": (RERANK_FIELD,)})
    ensure_pipeline(cluster, name, render_pipeline(eval_settings, model_id))
    return name


def ensure_corpus(cluster: Cluster, index: str, corpus_path: Path, progress: Callable[[str, int, int], None]) -> int:
    """Index the corpus unless an index of ours already holds all of it (reruns skip the bulk load)."""
    total = count_lines(corpus_path)
    if cluster.exists(f"/{index}") and cluster.call("GET", f"/{index}/_count")["count"] == total:
        return total
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if done % 500 == 0 or done == total:
            progress("indexing", done, total)

    fields = ("title", "text")
    return load_jsonl(
        cluster, index, corpus_path, text_fields=fields, combine=fields, only=fields, recreate=True, on_progress=tick
    )
