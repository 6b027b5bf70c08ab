"""``osrerank compare``: one query, the first stage alone and reranked, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ..compare import Comparison, compare, comparison_page, read_judgments
from ..report_page import write_page
from ..reranker import Reranker
from .common import CONTEXT, friendly_errors, out, resolve_settings, settings_options
from .query import QUERYING

#: How a reranked hit's move from the first stage's list is coloured.
MOVE_STYLE = {"↑": "green", "↓": "red", "n": "cyan", "=": "dim"}


def _grade(c: Comparison, doc: str) -> str:
    """A judged hit's grade (green when relevant), or nothing."""
    if not c.judged:
        return ""
    grade = c.judged.get(doc)
    return "" if grade is None else f" [{'green' if grade > 0 else 'yellow'}]●{grade}[/]"


def print_comparison(c: Comparison, width: int = 48) -> None:
    """The two lists side by side: rank, then each list's id (its grade with judgments), score and text; the
    reranked hits' moves. The texts take what the terminal leaves, up to ``width`` each."""
    before, after = c.arms
    ids = max([len(h.id) for h in c.before + c.after] + [len(after)]) + (3 if c.judged else 0)
    fixed = 2 + 2 * ids + 2 * 6 + 4 + 8 * 3 + 1  # rank, ids, scores, move; each column's padding and border
    text = max(8, min(width, (out.width - fixed) // 2))
    table = Table(title=f"query: {c.query}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True, min_width=2)
    for name in (before, after):
        table.add_column(name, no_wrap=True, min_width=ids)
        table.add_column("score", justify="right", no_wrap=True, min_width=6)
        if name == after:
            table.add_column("move", justify="right", no_wrap=True, min_width=4)
        table.add_column("title / first words", width=text, no_wrap=True, overflow="ellipsis")
    moves = c.moves()
    for i in range(max(len(c.before), len(c.after))):
        row = [str(i + 1)]
        for hits in (c.before, c.after):
            if i < len(hits):
                hit = hits[i]
                row += [f"{hit.id}{_grade(c, hit.id)}", f"{hit.score:.4g}"]
                if hits is c.after:
                    row.append(f"[{MOVE_STYLE[moves[i][0]]}]{moves[i]}[/]")
                row.append(Text(c.text(hit)))
            else:
                row += ["", ""] + ([""] if hits is c.after else []) + [""]
        table.add_row(*row)
    out.print(table)
    up = sum(m.startswith("↑") for m in moves)
    down = sum(m.startswith("↓") for m in moves)
    new = moves.count("new")
    took = f"took {c.took_ms[0]:.0f} ms alone, {c.took_ms[1]:.0f} ms reranked"
    out.print(f"moved up {up}, down {down}, new {new}, in place {moves.count('=')}; {took}", highlight=False)
    metrics = c.metrics()
    if metrics:
        line = ", ".join(f"{arm} {metrics[arm]['nDCG@10']:.4f}" for arm in c.arms)
        relevant = sum(g > 0 for g in c.judged.values())
        out.print(f"nDCG@10: {line} ({relevant} judged relevant for query {c.query_id})", highlight=False)
    if not c.reranked:
        out.print(f"[yellow]not reranked[/yellow]: the model failed ({c.fallback}); first-stage order shown")


@click.command(name="compare", context_settings=CONTEXT)
@click.argument("query")
@click.option("--size", type=click.IntRange(min=1), default=10, show_default=True, help="Hits in each list.")
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report page for this query to this file (one self-contained HTML).")  # fmt: skip
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Judgments that mark the judged hits: TREC qrels (qid 0 docid grade) or a BEIR TSV "
              "(query-id, corpus-id, score).")  # fmt: skip
@click.option("--query-id", help="The query's id in --qrels (needed when the file judges several queries).")
@settings_options(*QUERYING)
@friendly_errors
def compare_command(
    query: str, size: int, html: Path | None, qrels: Path | None, query_id: str | None, **kwargs: Any
) -> None:
    """Search QUERY with the first stage alone and through the rerank pipeline, and show the two lists side by
    side: each hit's id, score and title (or first words), and how far reranking moved it (↑3, ↓2, new). Starts
    from what setup recorded (--pipeline, else the latest setup): its index, fields and first stage.

    \b
    Example:
        osrerank compare "Vitamin D deficiency is unrelated to birth weight." --size 10
        osrerank compare "vitamin D and birth weight" --qrels qrels/test.tsv --query-id 1 --html q1.html
    """
    if query_id is not None and qrels is None:
        raise click.BadParameter("--query-id picks a query of --qrels: give --qrels too", param_hint="--query-id")
    settings = resolve_settings(kwargs, from_record=True)
    judged: dict[str, int] = {}
    if qrels is not None:
        query_id, judged = read_judgments(qrels, query_id)
    result = compare(Reranker(settings), query, size, judged=judged, query_id=query_id)
    print_comparison(result)
    if html is not None:
        about = {
            "index": settings.index.name,
            "pipeline": settings.pipeline.name,
            "first stage": settings.first_stage.kind,
            "model": settings.model.path,
            **({"judgments": f"{qrels.name}, query {query_id}"} if qrels is not None else {}),
        }
        out.print(f"wrote {write_page(comparison_page(result, about), html)}")


COMMANDS = [compare_command]
