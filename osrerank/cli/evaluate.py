"""``osrerank eval``: relevance and latency of BM25 vs BM25 + rerank on a BEIR folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import Progress
from rich.table import Table

from ..eval import MEASURES, run_eval
from ..eval_report import write_report
from ..reranker import Reranker
from .common import CONTEXT, console, friendly_errors, out, progress, resolve_settings, settings_options


@click.command(name="eval", context_settings=CONTEXT)
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), required=True, help="BEIR folder.")
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv to score against.")
@click.option(
    "--top-k", type=click.IntRange(min=1), default=100, show_default=True, help="BM25 hits the pipeline reranks."
)
@click.option("--max-queries", type=click.IntRange(min=1), help="Only the first N judged queries (a quick look).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("eval-results"),
              show_default=True, help="Folder for results.json, the runs and results.png.")  # fmt: skip
@settings_options("cluster", "model", "names", "sagemaker")
@friendly_errors
def evaluate(dataset: Path, split: str, top_k: int, max_queries: int | None, out_dir: Path, **kwargs: Any) -> None:
    """BM25 vs BM25 + rerank on a BEIR dataset: nDCG@10, MRR@10, Recall@100 and latency.

    Sets up the model first (idempotent), indexes the corpus once (title + text), runs every judged
    query through both arms, and writes OUT/results.json, OUT/<arm>.run and OUT/results.png.

    \b
    Example:
        osrerank eval --dataset ../shared/data/beir/scifact --model DIR --kind bi-encoder --top-k 100
    """
    settings = resolve_settings(kwargs)
    reranker = Reranker(settings, progress)
    model_id = reranker.setup().model_id
    with Progress(console=console) as bar:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            tasks.setdefault(stage, bar.add_task(stage, total=total))
            bar.update(tasks[stage], completed=done)

        result = run_eval(
            reranker.cluster(),
            settings,
            model_id,
            dataset,
            split=split,
            top_k=top_k,
            max_queries=max_queries,
            progress=tick,
        )
    table = Table(title=f"{dataset.name}: {result.queries} queries, top-{top_k}, {result.wall_s:.0f} s")
    for column in ("arm", *MEASURES, "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, arm in result.arms.items():
        lat = arm.latency_summary()
        table.add_row(name, *(f"{arm.metrics[m]:.4f}" for m in MEASURES), f"{lat['p50']:.0f}", f"{lat['p95']:.0f}")
    out.print(table)
    json_path, png_path = write_report(result, out_dir)
    out.print(f"wrote {json_path}, the runs and {png_path}")


COMMANDS = [evaluate]
