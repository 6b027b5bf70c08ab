"""``osrerank predict | search``: score through the cluster."""

from __future__ import annotations

import json
from typing import Any

import click

from ..reranker import Reranker
from .common import CONTEXT, friendly_errors, out, print_hits, resolve_settings, settings_options

QUERYING = ("cluster", "model", "names")


@click.command(context_settings=CONTEXT)
@click.argument("query")
@click.argument("docs", nargs=-1, required=True)
@settings_options(*QUERYING)
@friendly_errors
def predict(query: str, docs: tuple[str, ...], **kwargs: Any) -> None:
    """Score DOCS against QUERY through the cluster (_predict/text_similarity).

    \b
    Example:
        osrerank predict "I like you" "I hate you" "I love you"
    """
    for doc, score in zip(docs, Reranker(resolve_settings(kwargs)).predict(query, list(docs)), strict=True):
        out.print(f"{score:.8g}\t{doc}", highlight=False)


def _at_least_one(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter("must be at least 1")
    return value


@click.command(context_settings=CONTEXT)
@click.argument("query")
@click.option("--size", type=int, default=10, show_default=True, callback=_at_least_one, help="Hits to return.")
@click.option("--window", type=int, callback=_at_least_one, help="Hits to rerank (>= --size) [default: size].")
@click.option("--min-score", type=float, help="Drop reranked hits scoring below this.")
@click.option("--match-all", is_flag=True, help="First stage match_all instead of BM25 (as in the tutorial).")
@click.option("--query-text-path", help="Take the rerank query from this path of the search request instead.")
@click.option(
    "--blend",
    "blend_weight",
    type=click.FloatRange(0, 1),
    help="Order by this share of the normalised BM25 score plus the rest of the model's (0: pure rerank).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw OpenSearch response.")
@settings_options(*QUERYING)
@friendly_errors
def search(query: str, size: int, window: int | None, as_json: bool, **kwargs: Any) -> None:
    """Search INDEX with BM25 and rerank the top --window hits with the cross-encoder.

    \b
    Example:
        osrerank search "What is the capital of the United States?" --window 50 --size 5
    """
    if window is not None and window < size:
        raise click.BadParameter(
            f"--window {window} is smaller than --size {size}: it must be >= --size", param_hint="--window"
        )
    settings = resolve_settings(kwargs)
    result = Reranker(settings).search(query, size=size, window=window, **kwargs)
    if as_json:
        click.echo(json.dumps(result.raw, indent=2, ensure_ascii=False))
    else:
        print_hits(result, settings.document_fields)
    if not result.reranked:
        out.print(f"[yellow]not reranked[/yellow]: the model failed ({result.fallback}); first-stage order shown")


COMMANDS = [predict, search]
