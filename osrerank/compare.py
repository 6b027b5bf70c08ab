"""One query through the first stage alone and through the rerank pipeline, side by side (``osrerank compare``).

Both searches start from what setup recorded: the index, the fields, the first stage (bm25, neural or hybrid) and
the pipeline. The first stage alone is the request the pipeline would rerank, sent without it: a hybrid query
still needs its normalization, so it goes through a pipeline holding only the phase-results processor (the one
``osrerank eval`` uses, removed by teardown); after ``setup --extend-pipeline`` it goes through the user's own
pipeline, which does not rerank. Optional judgments (TREC qrels or a BEIR TSV) mark the judged hits.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .eval import PHASE_ONLY, per_query_metrics
from .first_stage import first_stage_query, phase_processor
from .pipeline import ensure_pipeline
from .report_page import TOP, PageArm, PageQuery, ReportPage, snippet
from .reranker import Reranker
from .search import Hit, search_body

__all__ = ["Comparison", "compare", "comparison_page", "moves", "read_judgments"]


@dataclass
class Comparison:
    """The two lists for one query: ``before`` (the first stage alone) and ``after`` (through the pipeline)."""

    query: str
    first_stage: str
    before: list[Hit]
    after: list[Hit]
    #: how long each search took as the client waited (ms): first stage alone, reranked (the engine's ``took``
    #: leaves the search pipeline's response processors out)
    took_ms: tuple[float, float]
    fields: tuple[str, ...]
    query_id: str | None = None
    judged: dict[str, int] = field(default_factory=dict)
    reranked: bool = True
    fallback: str | None = None

    @property
    def arms(self) -> tuple[str, str]:
        return self.first_stage, f"{self.first_stage}+rerank"

    def text(self, hit: Hit) -> str:
        """The hit's title, else the first words of its reranked fields."""
        return snippet(hit.source.get("title"), hit.text(self.fields))

    def moves(self) -> list[str]:
        """Each reranked hit's move from its place in the first stage's list: ↑3, ↓2, = or new."""
        return moves([h.id for h in self.before], [h.id for h in self.after])

    def metrics(self) -> dict[str, dict[str, float]]:
        """Each list's nDCG@10, RR@10, R@100 against the judgments, in the order shown (none without them)."""
        if not self.judged:
            return {}
        qid = self.query_id or "query"
        runs = {arm: {h.id: float(len(hits) - i) for i, h in enumerate(hits)} for arm, hits in self._lists().items()}
        return {arm: per_query_metrics({qid: self.judged}, {qid: run})[qid] for arm, run in runs.items()}

    def _lists(self) -> dict[str, list[Hit]]:
        return dict(zip(self.arms, (self.before, self.after), strict=True))


def moves(before: list[str], after: list[str]) -> list[str]:
    """For each id of ``after``: how many places it rose (↑) or fell (↓) from ``before``, ``=``, or ``new``."""
    place = {doc: i for i, doc in enumerate(before)}
    out = []
    for i, doc in enumerate(after):
        if doc not in place:
            out.append("new")
        else:
            delta = place[doc] - i
            out.append(f"↑{delta}" if delta > 0 else f"↓{-delta}" if delta < 0 else "=")
    return out


def _alone_pipeline(reranker: Reranker) -> str:
    """The pipeline the first stage alone goes through: the user's own one that setup extended, a hybrid query's
    normalization alone, or none (``_none`` also skips an index's default pipeline)."""
    s, cluster = reranker.settings, reranker.cluster()
    if s.pipeline.extend:
        return s.pipeline.extend
    try:
        phase = phase_processor(s.first_stage, cluster.version)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if phase is None:
        return "_none"
    name = s.eval_pipeline + PHASE_ONLY
    body = {"description": "osrerank: a hybrid first stage alone", "phase_results_processors": [phase]}
    ensure_pipeline(cluster, name, body)
    return name


def compare(
    reranker: Reranker,
    query: str,
    size: int = 10,
    *,
    judged: dict[str, int] | None = None,
    query_id: str | None = None,
) -> Comparison:
    """Search ``query`` twice: the first stage alone for ``size`` hits, and through the rerank pipeline (its rank
    window applies, as for any search)."""
    s = reranker.settings
    fields, timeout = s.index.document_fields, s.connector.timeout_s + 5
    model_id = reranker.embedding_model_id() if s.first_stage.embeds else None
    retrieve = first_stage_query(
        s.first_stage, query, fields, hits=size, embedding_model_id=model_id, window=s.pipeline.window
    )
    body = search_body(query, fields, size, rerank=False, first_stage=retrieve)
    params = {"search_pipeline": _alone_pipeline(reranker)}
    t0 = time.perf_counter()
    raw = reranker.cluster().call("POST", f"/{s.index.name}/_search", body, params=params, timeout=timeout)
    t1 = time.perf_counter()
    after = reranker.search(query, size=size)
    t2 = time.perf_counter()
    before = [Hit(h["_id"], float(h["_score"]), h.get("_source", {})) for h in raw["hits"]["hits"]]
    return Comparison(
        query=query,
        first_stage=s.first_stage.kind,
        before=before,
        after=after.hits,
        took_ms=((t1 - t0) * 1000, (t2 - t1) * 1000),
        fields=fields,
        query_id=query_id,
        judged=dict(judged or {}),
        reranked=after.reranked,
        fallback=after.fallback,
    )


def comparison_page(c: Comparison, about: dict[str, str] | None = None) -> ReportPage:
    """The report page for this one query (opened on it)."""
    qid = c.query_id or "query"
    metrics = c.metrics()
    shown = {h.id: c.text(h) for hits in c._lists().values() for h in hits}
    judged = {d: g for d, g in c.judged.items() if g > 0 or d in shown}
    hits = {arm: [(h.id, h.score) for h in hits[:TOP]] for arm, hits in c._lists().items()}
    arms = [PageArm(arm, metrics.get(arm), {"took": took}) for arm, took in zip(c.arms, c.took_ms, strict=True)]
    return ReportPage(
        title=f"compare: {c.query}",
        arms=arms,
        queries=[PageQuery(qid, c.query, hits, metrics, judged)],
        docs=shown,
        baseline=c.arms[0],
        reranked=c.arms[1],
        about=about or {},
        latency_columns=("took",),
    )


def read_judgments(path: Path, query_id: str | None = None) -> tuple[str, dict[str, int]]:
    """One query's judgments (its id, document id -> grade) from TREC qrels (``qid 0 docid grade``, whitespace
    separated) or a BEIR TSV (header ``query-id corpus-id score``). Without ``query_id`` the file must hold one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: --qrels takes TREC qrels or a BEIR qrels TSV") from None
    every: dict[str, dict[str, int]] = {}
    beir = bool(lines) and lines[0].split("\t")[0].strip() == "query-id"
    rows = csv.reader(lines[1:], delimiter="\t") if beir else (line.split() for line in lines)
    for n, row in enumerate(rows, 2 if beir else 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != (3 if beir else 4):
            shape = "query-id, corpus-id, score (tab-separated)" if beir else "qid iteration docid grade"
            raise ConfigError(f"{path}:{n}: expected {shape}, got {' '.join(row)!r}")
        qid, doc, grade = (row[0], row[1], row[2]) if beir else (row[0], row[2], row[3])
        try:
            every.setdefault(qid.strip(), {})[doc.strip()] = int(float(grade))
        except ValueError:
            raise ConfigError(f"{path}:{n}: the grade {grade!r} is not a number") from None
    if query_id is not None:
        if query_id not in every:
            raise ConfigError(f"{path} has no judgments for query {query_id!r} ({len(every)} queries in it)")
        return query_id, every[query_id]
    if len(every) != 1:
        raise ConfigError(
            f"{path} holds judgments for {len(every)} queries: pick one with --query-id (e.g. {next(iter(every), '1')})"
        )
    return next(iter(every.items()))
