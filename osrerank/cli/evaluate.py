"""``osrerank eval``: relevance and latency of BM25 vs BM25 + rerank on a BEIR folder."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress
from rich.table import Table

from ..eval import MEASURES, Dataset, EvalResult, prepare_stages, run_eval, run_windows
from ..eval_report import write_results, write_windows
from ..report_page import write_eval_page
from ..reranker import Reranker
from .common import CONTEXT, EVERY, console, friendly_errors, out, progress, resolve_settings, settings_options


@contextmanager
def bars() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing one Rich bar per stage; into a log (not a terminal), a line per stage
    every tenth of the way, with the rate, so a long run shows it is moving."""
    if not console.is_terminal:
        started: dict[str, float] = {}
        shown: dict[str, int] = {}

        def line(stage: str, done: int, total: int) -> None:
            t0 = started.setdefault(stage, time.monotonic())
            tenth = 10 * done // max(total, 1)
            if (done and tenth > shown.get(stage, 0)) or done == total:
                if shown.get(stage) == 10:
                    return
                shown[stage] = tenth
                elapsed = time.monotonic() - t0
                console.print(f"{stage}: {done}/{total} ({elapsed:.0f} s)", highlight=False)

        yield line
        return
    with Progress(console=console) as bar:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            tasks.setdefault(stage, bar.add_task(stage, total=total))
            bar.update(tasks[stage], completed=done)

        yield tick


def _stages(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    stages = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in stages if s not in ("bm25", "neural", "hybrid")]
    if unknown or not stages:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: give bm25, neural and/or hybrid, comma-separated")
    return stages


def print_result(result: EvalResult, top_k: int) -> None:
    table = Table(title=f"{Path(result.dataset).name}: {result.queries} queries, top-{top_k}, {result.wall_s:.0f} s")
    for column in ("arm", *MEASURES, "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, arm in result.arms.items():
        lat = arm.latency_summary()
        timing = [f"{lat['p50']:.0f}", f"{lat['p95']:.0f}"] if lat else ["-", "-"]
        table.add_row(name, *(f"{arm.metrics[m]:.4f}" for m in MEASURES), *timing)
    out.print(table)


@click.command(name="eval", context_settings=CONTEXT)
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), required=True, help="BEIR folder.")
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv to score against.")
@click.option(
    "--top-k", type=click.IntRange(min=1), default=100, show_default=True, help="BM25 hits the pipeline reranks."
)
@click.option("--max-queries", type=click.IntRange(min=1), help="Only the first N judged queries (a quick look).")
@click.option("--windows", help="Also run 10-hit searches through the engine with each of these rank windows "
              "(e.g. 10,20,50,100), charting nDCG@10 against latency (windows.png).")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("eval-results"),
              show_default=True, help="Folder for results.json, the runs and the charts.")  # fmt: skip
@click.option("--first-stage", "first_stages", default="bm25", show_default=True, callback=_stages,
              help="First stages to compare, each alone and + rerank: bm25, neural, hybrid (comma-separated; neural "
              "and hybrid need --embedding-model).")  # fmt: skip
@settings_options(*EVERY, exclude=("first_stage.kind",))
@friendly_errors
def evaluate(
    dataset: Path,
    split: str,
    top_k: int,
    max_queries: int | None,
    windows: str | None,
    out_dir: Path,
    first_stages: tuple[str, ...],
    **kwargs: Any,
) -> None:
    """First stages alone vs + rerank (and blends with BM25) on a BEIR dataset: nDCG@10, MRR@10, Recall@100,
    latency.

    Sets up the model first (idempotent), indexes the corpus once (title + text, and its embeddings for neural
    and hybrid), runs every judged query through every arm, and writes OUT/results.json, OUT/<arm>.run,
    OUT/results.png and OUT/report.html (one self-contained page: every query's nDCG@10 in two arms chosen on
    it, worst first, and any query's two top-10 lists side by side, judged documents marked).

    \b
    Example:
        osrerank eval --dataset ../shared/data/beir/scifact --model DIR --top-k 100
        osrerank eval --dataset ../shared/data/beir/scifact --first-stage bm25,neural,hybrid --embedding-model DIR
    """
    settings = resolve_settings(kwargs, from_record=True)
    reranker = Reranker(settings, progress)
    model_id = reranker.setup().model_id
    stages = prepare_stages(reranker.ml(), settings, first_stages, progress)
    with bars() as tick:
        result = run_eval(reranker.cluster(), settings, model_id, dataset, split=split, top_k=top_k,
                          max_queries=max_queries, progress=tick, stages=stages)  # fmt: skip
    print_result(result, top_k)
    json_path, png_path = write_results(result, out_dir)
    data = Dataset.read(dataset, split, max_queries)
    page = write_eval_page(result, data, out_dir)
    out.print(f"wrote {json_path}, the runs, {png_path} and {page} (query by query: open it in a browser)")
    if windows:
        sizes = [int(w) for w in windows.split(",") if w.strip()]
        with bars() as tick:
            arms = run_windows(reranker.cluster(), settings, model_id, dataset, sizes, split=split,
                               max_queries=max_queries, progress=tick)  # fmt: skip
        for window, arm in arms.items():
            lat, ndcg = arm.latency_summary(), arm.metrics["nDCG@10"]
            out.print(f"window {window:>4}: nDCG@10 {ndcg:.4f}, p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms")
        out.print(f"wrote {write_windows(arms, f'{dataset.name}: 10 hits reranked from each window', out_dir)[1]}")
        out.print(f"wrote {write_eval_page(result, data, out_dir, windows=arms)} again, with the windows")


COMMANDS = [evaluate]
