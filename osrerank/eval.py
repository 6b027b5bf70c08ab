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
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .embedding import Embedding
from .errors import ConfigError, ToolMissingError
from .first_stage import FirstStageOptions, first_stage_query, phase_processor
from .ingest import RERANK_FIELD, count_lines, create_index, knn_field, load_jsonl, read_jsonl
from .ml_commons import MLCommons
from .opensearch import Cluster
from .pipeline import ensure_pipeline, set_up_pipeline
from .search import blend, search_body
from .settings import Settings
from .types import Progress, quiet

__all__ = [
    "BLEND_WEIGHTS",
    "MEASURES",
    "RERANK_FIELD",
    "Arm",
    "Dataset",
    "EvalResult",
    "compute_metrics",
    "ensure_corpus",
    "ensure_eval_pipeline",
    "load_qrels",
    "load_queries",
    "per_query_metrics",
    "prepare_stages",
    "run_eval",
    "run_windows",
    "search_arm",
]

MEASURES = ("nDCG@10", "RR@10", "R@100")
#: The suffix of an eval pipeline that holds only a hybrid first stage's phase processor (no rerank).
PHASE_ONLY = "-hybrid-alone"
#: Shares of the first-stage score in the blends eval reports beside pure rerank (0).
BLEND_WEIGHTS = (0.1, 0.3, 0.5)


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
def per_query_metrics(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Each query of ``qrels``: its nDCG@10, RR@10, R@100 (0 for a query with no hits), in qrels order."""
    try:
        import ir_measures
    except ImportError:
        raise ToolMissingError("osrerank eval needs: pip install 'osrerank[eval]'") from None
    scores = {q: dict.fromkeys(MEASURES, 0.0) for q in qrels}
    for metric in ir_measures.iter_calc([ir_measures.parse_measure(m) for m in MEASURES], qrels, run):
        if metric.query_id in scores:
            scores[metric.query_id][str(metric.measure)] = metric.value
    return scores


def compute_metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean nDCG@10, RR@10, R@100 over the queries of ``qrels`` (a query with no hits counts as 0)."""
    per_query = per_query_metrics(qrels, run).values()
    return {m: sum(q[m] for q in per_query) / len(per_query) for m in MEASURES} if qrels else {}


# ----------------------------------------------------------------------------- the runs
@dataclass(frozen=True)
class Dataset:
    """A BEIR folder read for one split: the judged queries (in qrels order) and their judgments."""

    path: Path
    qrels: dict[str, dict[str, int]]
    queries: dict[str, str]

    @property
    def corpus(self) -> Path:
        return self.path / "corpus.jsonl"

    @classmethod
    def read(cls, path: Path, split: str, max_queries: int | None, *, strict: bool = False) -> Dataset:
        """The judged queries of ``split``. With ``strict`` a judgment for a query id that queries.jsonl
        lacks is an error (training), else it is left out (evaluation, as BEIR tools do)."""
        for p in (path / "corpus.jsonl", path / "queries.jsonl"):
            if not p.exists():
                raise ConfigError(f"{p} does not exist: --dataset must be a BEIR folder (corpus.jsonl, queries.jsonl)")
        qrels = load_qrels(path / "qrels" / f"{split}.tsv")
        queries = load_queries(path / "queries.jsonl")
        if not qrels:
            raise ConfigError(f"{path}/qrels/{split}.tsv holds no judgments")
        unknown = sorted(set(qrels) - set(queries))
        if strict and unknown:
            raise ConfigError(
                f"{len(unknown)} query id(s) of qrels/{split}.tsv are not in queries.jsonl "
                f"(e.g. {', '.join(unknown[:5])})"
            )
        judged = [q for q in qrels if q in queries][:max_queries]
        if not judged:
            raise ConfigError(f"no query of {path}/qrels/{split}.tsv is in queries.jsonl: nothing to evaluate")
        return cls(path, {q: qrels[q] for q in judged}, {q: queries[q] for q in judged})


@dataclass(frozen=True)
class FirstStages:
    """The first stages an evaluation compares, and (for neural and hybrid) the embedding model behind them."""

    kinds: tuple[str, ...] = ("bm25",)
    options: FirstStageOptions = field(default_factory=FirstStageOptions)
    embedding_model_id: str | None = None
    dimension: int = 0
    ingest_pipeline: str | None = None

    def query(self, kind: str, query: str, size: int) -> dict[str, Any]:
        options = self.options.model_copy(update={"kind": kind})
        return first_stage_query(options, query, (RERANK_FIELD,), hits=size, embedding_model_id=self.embedding_model_id)


def prepare_stages(ml: MLCommons, settings: Settings, kinds: Sequence[str], progress: Progress = quiet) -> FirstStages:
    """The first stages to compare; for neural or hybrid ones, the embedding model deployed (the setup's, by
    name) and the eval corpus's own ingest pipeline."""
    if all(k == "bm25" for k in kinds):
        return FirstStages(tuple(kinds), settings.first_stage)
    options = settings.first_stage.model_copy(update={"kind": "hybrid"})
    if not options.embedding_model:
        raise ConfigError(f"--first-stage {','.join(kinds)} needs --embedding-model (the model that embeds both)")
    embedding = Embedding(settings.updated(first_stage=options.model_dump()), progress)
    embedding.check()
    embedding.prepare()
    group = ml.ensure_model_group(settings.group_name)
    model = embedding.setup_model(ml, group.id)
    ingest = embedding.ensure_ingest(ml.cluster, model.id, RERANK_FIELD, embedding.eval_ingest_pipeline)
    return FirstStages(tuple(kinds), options, model.id, embedding.dimension(), ingest.id)


def search_arm(
    cluster: Cluster,
    index: str,
    data: Dataset,
    size: int,
    pipeline: str | None,
    timeout: float,
    tick: Callable[[], None],
    first: Callable[[str], dict[str, Any]] | None = None,
) -> Arm:
    """Every judged query through one arm (the first stage alone when ``pipeline`` is None, or when it holds
    no rerank), timed by the client; ``first(query)``: the first stage's query (else BM25)."""
    arm = Arm()
    # corpus-wide term statistics: BM25 is the same whatever the shard count (several data nodes: two shards)
    params = {"search_type": "dfs_query_then_fetch", **({"search_pipeline": pipeline} if pipeline else {})}
    reranks = pipeline is not None and not pipeline.endswith(PHASE_ONLY)
    for qid, query in data.queries.items():
        retrieve = first(query) if first else None
        body = search_body(query, (RERANK_FIELD,), size, rerank=reranks, source=[RERANK_FIELD], first_stage=retrieve)
        t0 = time.perf_counter()
        reply = cluster.call("POST", f"/{index}/_search", body, params=params, timeout=timeout)
        arm.latencies_ms.append((time.perf_counter() - t0) * 1000)
        arm.run[qid] = [(h["_id"], float(h["_score"])) for h in reply["hits"]["hits"]]
        tick()
    arm.metrics = compute_metrics(data.qrels, {q: dict(hits) for q, hits in arm.run.items()})
    return arm


def _counter(progress: Callable[[str, int, int], None], stage: str, total: int) -> Callable[[], None]:
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        progress(stage, done, total)

    return tick


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
    stages: FirstStages | None = None,
) -> EvalResult:
    """Index (once), then run every judged query through each first stage alone and through the rerank
    pipeline over its ``top_k`` hits (arms ``bm25``, ``bm25+rerank``, ``neural``, ``neural+rerank``, ``hybrid``,
    ``hybrid+rerank``); the blends of BM25's two runs are scored too (no search of their own)."""
    started = time.perf_counter()
    stages = stages or FirstStages()
    data = Dataset.read(dataset, split, max_queries)
    index = settings.eval_index(dataset.name)
    documents = ensure_corpus(cluster, index, data.corpus, progress, stages)
    timeout = settings.connector.timeout_s + 30
    tick = _counter(progress, "queries", 2 * len(stages.kinds) * len(data.queries))
    arms: dict[str, Arm] = {}
    for kind in stages.kinds:
        first = functools.partial(stages.query, kind, size=top_k)
        phase = phase_processor(stages.options.model_copy(update={"kind": kind}), cluster.version)
        alone = None
        if phase:  # a hybrid query alone still needs its normalization
            alone = settings.eval_pipeline + PHASE_ONLY
            body = {"description": "osrerank eval: a hybrid first stage alone", "phase_results_processors": [phase]}
            ensure_pipeline(cluster, alone, body)
        reranking = ensure_eval_pipeline(cluster, settings, model_id, "" if kind == "bm25" else kind, phase)
        arms[kind] = search_arm(cluster, index, data, top_k, alone, timeout, tick, first)
        arms[f"{kind}+rerank"] = search_arm(cluster, index, data, top_k, reranking, timeout, tick, first)
    if "bm25" not in arms:
        return _result(dataset, split, data, documents, top_k, settings, started, arms)
    for weight in BLEND_WEIGHTS:
        blended = Arm()
        for qid, hits in arms["bm25+rerank"].run.items():
            scores = blend(dict(arms["bm25"].run[qid]), dict(hits), weight)
            blended.run[qid] = sorted(scores.items(), key=lambda kv: -kv[1])
        blended.metrics = compute_metrics(data.qrels, {q: dict(h) for q, h in blended.run.items()})
        arms[f"blend {weight:g} bm25"] = blended
    return _result(dataset, split, data, documents, top_k, settings, started, arms)


def _result(
    dataset: Path,
    split: str,
    data: Dataset,
    documents: int,
    top_k: int,
    settings: Settings,
    started: float,
    arms: dict[str, Arm],
) -> EvalResult:
    return EvalResult(
        dataset=str(dataset),
        split=split,
        queries=len(data.queries),
        documents=documents,
        top_k=top_k,
        model=settings.model.path,
        kind=settings.model.kind,
        bm25="OpenSearch default BM25 (k1=1.2, b=0.75) on title + text",
        wall_s=time.perf_counter() - started,
        arms=arms,
    )


def run_windows(
    cluster: Cluster,
    settings: Settings,
    model_id: str,
    dataset: Path,
    windows: list[int],
    *,
    split: str = "test",
    size: int = 10,
    max_queries: int | None = None,
    progress: Callable[[str, int, int], None] = lambda *_: None,
) -> dict[int, Arm]:
    """Plain ``size``-hit searches through a pipeline with each rank window, in the engine: what each
    window buys in nDCG@10 and costs in latency."""
    data = Dataset.read(dataset, split, max_queries)
    index = settings.eval_index(dataset.name)
    ensure_corpus(cluster, index, data.corpus, progress)
    results = {}
    for window in windows:
        pipeline = ensure_eval_pipeline(cluster, settings.updated(pipeline={"window": window}), model_id, f"w{window}")
        tick = _counter(progress, f"window {window}", len(data.queries))
        results[window] = search_arm(cluster, index, data, size, pipeline, settings.connector.timeout_s + 30, tick)
    return results


def ensure_eval_pipeline(
    cluster: Cluster, settings: Settings, model_id: str, suffix: str = "", phase: dict[str, Any] | None = None
) -> str:
    """A rerank pipeline over ``rerank_text`` for the model (after a hybrid first stage's ``phase`` processor);
    returns its name."""
    name = settings.eval_pipeline + (f"-{suffix}" if suffix else "")
    description = f"osrerank eval: rerank {RERANK_FIELD} with {settings.model.path}"
    options = settings.pipeline.model_copy(update={"extend": None})
    set_up_pipeline(cluster, options, model_id, (RERANK_FIELD,), description, name, phase=phase)
    return name


def ensure_corpus(
    cluster: Cluster,
    index: str,
    corpus_path: Path,
    progress: Callable[[str, int, int], None],
    stages: FirstStages | None = None,
) -> int:
    """Index the corpus unless an index of ours already holds all of it (reruns skip the bulk load); for neural
    and hybrid first stages with the vector field, embedded on the way in (the stages' ingest pipeline)."""
    total = count_lines(corpus_path)
    vectors = stages is not None and stages.ingest_pipeline is not None
    field_name = stages.options.vector_field if stages else ""
    if cluster.exists(f"/{index}") and cluster.call("GET", f"/{index}/_count")["count"] == total:
        mapped = next(iter(cluster.call("GET", f"/{index}/_mapping").values()))["mappings"].get("properties", {})
        if not vectors or field_name in mapped:
            return total
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if done % 500 == 0 or done == total:
            progress("indexing", done, total)

    fields = ("title", "text")
    if vectors:
        assert stages is not None
        create_index(cluster, index, (*fields, RERANK_FIELD), recreate=True, pipeline=stages.ingest_pipeline,
                     vectors={field_name: knn_field(stages.dimension)})  # fmt: skip
    return load_jsonl(
        cluster, index, corpus_path, text_fields=fields, combine=fields, only=fields, recreate=not vectors,
        on_progress=tick,
    )  # fmt: skip
