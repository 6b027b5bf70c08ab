"""The report page: one self-contained HTML file that shows, query by query, what reranking changed.

``osrerank eval`` writes it beside results.json (report.html), ``osrerank compare --html`` writes it for one
query. Everything is inside the file: the CSS, a small vanilla script, the data as JSON and the charts as PNG
``data:`` URIs, so it opens offline and from a CI artifact and makes no network request. It shows the summary
(every arm's metrics and latency, the charts), one row per judged query (its nDCG@10 in two arms chosen on the
page, the difference, sortable and filterable, worst first) and, for a query opened, the two top-10 lists side
by side: each hit's title or first words, score, judged grade and rank move between the lists.

:func:`query_rows` is the table's order and filters in Python; the page's script computes the same for any two
arms chosen on it (the browser test checks the two agree).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
from markupsafe import Markup

from .eval import MEASURES, Arm, Dataset, EvalResult, per_query_metrics

__all__ = [
    "STATUSES",
    "TOP",
    "PageArm",
    "PageQuery",
    "ReportPage",
    "Row",
    "eval_page",
    "first_words",
    "png_data_uri",
    "query_rows",
    "read_titles",
    "render_page",
    "snippet",
    "status",
    "write_eval_page",
    "write_page",
]

#: Hits of each list the page shows and keeps.
TOP = 10
#: Words of a document without a title that stand for it.
WORDS = 24
#: Below this, a difference in nDCG@10 is no difference (the page's script uses the same).
EPS = 1e-9
Status = Literal["hurt", "helped", "unchanged", "none"]
#: What each filter of the query table keeps, as the page labels it.
STATUSES: dict[str, str] = {
    "hurt": "hurt by reranking",
    "helped": "helped",
    "unchanged": "unchanged",
    "none": "no judged document retrieved",
}


@dataclass
class PageArm:
    """One way of searching as the summary shows it: mean metrics (None without judgments) and latencies (ms)."""

    name: str
    metrics: dict[str, float] | None = None
    latency_ms: dict[str, float] | None = None


@dataclass
class PageQuery:
    """One query: its top-10 lists per arm, its metrics per arm (empty without judgments), and the grades of the
    documents shown and of every document judged relevant."""

    id: str
    text: str
    hits: dict[str, list[tuple[str, float]]]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    judged: dict[str, int] = field(default_factory=dict)


@dataclass
class ReportPage:
    title: str
    arms: list[PageArm]
    queries: list[PageQuery]
    #: document id -> its title, or its first words
    docs: dict[str, str]
    #: the two arms the page opens with
    baseline: str
    reranked: str
    #: what the header says (dataset, model, ...)
    about: dict[str, str] = field(default_factory=dict)
    #: (caption, data: URI)
    charts: list[tuple[str, str]] = field(default_factory=list)
    #: the latency columns of the summary
    latency_columns: tuple[str, ...] = ("p50", "p95")

    def to_json(self) -> dict[str, Any]:
        """The data the page's script reads: metrics as lists in MEASURES order, hits as [id, score]."""
        return {
            "title": self.title,
            "measures": list(MEASURES),
            "baseline": self.baseline,
            "reranked": self.reranked,
            "arms": [a.name for a in self.arms],
            "statuses": STATUSES,
            "docs": self.docs,
            "queries": [
                {
                    "id": q.id,
                    "text": q.text,
                    "hits": {arm: [[d, _round(s)] for d, s in hits[:TOP]] for arm, hits in q.hits.items()},
                    "metrics": {arm: [_round(m[k]) for k in MEASURES] for arm, m in q.metrics.items()},
                    "judged": q.judged,
                }
                for q in self.queries
            ],
        }


def _round(x: float) -> float:
    return round(float(x), 6)


# ----------------------------------------------------------------------------- the query table
@dataclass(frozen=True)
class Row:
    """A query in the table: nDCG@10 in the two arms (None without judgments), their difference, what changed."""

    id: str
    text: str
    baseline: float | None
    reranked: float | None
    diff: float
    status: Status


def _ndcg(query: PageQuery, arm: str) -> float | None:
    metrics = query.metrics.get(arm)
    return _round(metrics["nDCG@10"]) if metrics else None


def status(query: PageQuery, baseline: str, reranked: str) -> Status:
    """``none`` when neither arm's top 10 holds a document judged relevant, else by the sign of the difference."""
    shown = [d for arm in (baseline, reranked) for d, _ in query.hits.get(arm, [])[:TOP]]
    if not any(query.judged.get(d, 0) > 0 for d in shown):
        return "none"
    a, b = _ndcg(query, baseline), _ndcg(query, reranked)
    diff = 0.0 if a is None or b is None else b - a
    return "hurt" if diff < -EPS else "helped" if diff > EPS else "unchanged"


def query_rows(
    page: ReportPage, baseline: str | None = None, reranked: str | None = None, only: Status | None = None
) -> list[Row]:
    """The table as the page opens it for these two arms: worst difference first (ties in query order), all rows
    or those of one filter."""
    a, b = baseline or page.baseline, reranked or page.reranked
    rows = []
    for q in page.queries:
        x, y = _ndcg(q, a), _ndcg(q, b)
        rows.append(Row(q.id, q.text, x, y, 0.0 if x is None or y is None else y - x, status(q, a, b)))
    rows.sort(key=lambda r: r.diff)  # stable: ties keep the query order
    return [r for r in rows if only is None or r.status == only]


# ----------------------------------------------------------------------------- building the page
def first_words(text: str, words: int = WORDS) -> str:
    parts = str(text or "").split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def snippet(title: Any, text: Any) -> str:
    """What stands for a document: its title, else its first words."""
    return str(title).strip() if isinstance(title, str) and title.strip() else first_words(str(text or ""))


_ID = re.compile(r'"_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def read_titles(corpus: Path, ids: Iterable[str]) -> dict[str, str]:
    """Title (or first words of the text) of the documents ``ids`` from a BEIR corpus.jsonl, read once, stopping when
    all are found; a line whose id is plainly another one is not parsed."""
    wanted, found = set(ids), {}
    if not wanted:
        return found
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            match = _ID.search(line)
            if match and json.loads(f'"{match.group(1)}"') not in wanted:
                continue
            if not line.strip():
                continue
            row = json.loads(line)
            doc = str(row.get("_id"))
            if doc in wanted:
                found[doc] = snippet(row.get("title"), row.get("text"))
                if len(found) == len(wanted):
                    break
    return found


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _pair(arms: Sequence[str]) -> tuple[str, str]:
    """The arms the page opens with: the first plain first stage and that stage reranked."""
    plain = [a for a in arms if "+" not in a and not a.startswith(("blend", "window"))]
    for a in plain:
        if f"{a}+rerank" in arms:
            return a, f"{a}+rerank"
    return arms[0], arms[1] if len(arms) > 1 else arms[0]


def eval_page(
    result: EvalResult,
    data: Dataset,
    *,
    windows: Mapping[int, Arm] | None = None,
    charts: Sequence[tuple[str, Path]] = (),
) -> ReportPage:
    """The page of an evaluation: every arm (window studies as ``window N``), every judged query of ``data``."""
    arms = {**result.arms, **{f"window {w}": arm for w, arm in (windows or {}).items()}}
    per_query = {
        name: per_query_metrics(data.qrels, {q: dict(h) for q, h in a.run.items()}) for name, a in arms.items()
    }
    queries, shown = [], set()
    for qid, text in data.queries.items():
        hits = {name: arm.run.get(qid, [])[:TOP] for name, arm in arms.items()}
        docs = {d for top in hits.values() for d, _ in top}
        shown |= docs
        judged = {d: g for d, g in data.qrels.get(qid, {}).items() if g > 0 or d in docs}
        metrics = {name: per_query[name][qid] for name in arms if qid in per_query[name]}
        queries.append(PageQuery(qid, text, hits, metrics, judged))
    summary = [PageArm(name, dict(arm.metrics), _latency(arm)) for name, arm in arms.items()]
    baseline, reranked = _pair(list(arms))
    about = {
        "dataset": f"{Path(result.dataset).name} ({result.split})",
        "queries": str(result.queries),
        "documents": str(result.documents),
        "first-stage hits reranked": str(result.top_k),
        "model": f"{result.model} ({result.kind})",
        "took": f"{result.wall_s:.0f} s",
    }
    return ReportPage(
        title=f"{Path(result.dataset).name}: what reranking changed, query by query",
        arms=summary,
        queries=queries,
        docs=read_titles(data.corpus, shown),
        baseline=baseline,
        reranked=reranked,
        about=about,
        charts=[(caption, png_data_uri(path)) for caption, path in charts if path.exists()],
    )


def _latency(arm: Arm) -> dict[str, float] | None:
    summary = arm.latency_summary()
    return {"p50": summary["p50"], "p95": summary["p95"]} if summary else None


# ----------------------------------------------------------------------------- rendering
def _template() -> jinja2.Template:
    source = resources.files("osrerank.reports").joinpath("eval.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(source)


def _embedded(data: Any) -> str:
    """JSON safe inside a <script> element: no ``<`` (so no ``</script>``), and no ``://`` (a document's text may
    hold a URL: escaped, it is the same string to JSON.parse and no address in the file)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("://", ":\\/\\/")


def render_page(page: ReportPage) -> str:
    best = {m: max((a.metrics[m] for a in page.arms if a.metrics and m in a.metrics), default=None) for m in MEASURES}
    measures = MEASURES if any(a.metrics for a in page.arms) else ()  # compare without judgments: no columns
    return _template().render(page=page, measures=measures, best=best, data=Markup(_embedded(page.to_json())))


def write_page(page: ReportPage, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(page), encoding="utf-8")
    return path


def write_eval_page(
    result: EvalResult, data: Dataset, out_dir: Path, *, windows: Mapping[int, Arm] | None = None
) -> Path:
    """OUT/report.html, with the charts eval wrote beside it (results.png, windows.png)."""
    charts = [("metrics and latency per arm", out_dir / "results.png")]
    if windows:
        charts.append(("nDCG@10 against latency, per rank window", out_dir / "windows.png"))
    return write_page(eval_page(result, data, windows=windows, charts=charts), out_dir / "report.html")
