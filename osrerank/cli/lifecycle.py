"""``osrerank deploy | setup | teardown | demo | targets``: bring reranking up and take it down."""

from __future__ import annotations

import time
from typing import Any

import click

from ..reranker import Reranker
from .common import (
    CONTEXT,
    EVERY,
    friendly_errors,
    out,
    print_hits,
    print_steps,
    progress,
    resolve_settings,
    settings_options,
)


@click.command(context_settings=CONTEXT)
@click.option("--dry-run", is_flag=True, help="Show what would be created or reused; change nothing.")
@settings_options(*EVERY)
@friendly_errors
def deploy(dry_run: bool, **kwargs: Any) -> None:
    """Deploy the model only (the stand-in, SageMaker, or inside the cluster) and say where it is.

    Idempotent: an endpoint with this name and the same settings is reused.

    \b
    Example:
        osrerank deploy --target sagemaker --role-arn arn:aws:iam::123456789012:role/sm --region us-west-2
    """
    reranker = Reranker(resolve_settings(kwargs), progress)
    if dry_run:
        reranker.target.check()
        for line in reranker.target.plan():
            out.print(f"would {line}")
        return
    for step, found in reranker.deploy().items():
        out.print(f"{step}: {found.action}: {found.id}")


@click.command(context_settings=CONTEXT)
@click.option("--create-index", is_flag=True, help="Create the index, empty, when it does not exist (else refused).")
@settings_options(*EVERY)
@friendly_errors
def setup(create_index: bool, **kwargs: Any) -> None:
    """Deploy the model, then create model group, connector, model and rerank pipeline.

    Idempotent: a second run finds every object by name and reuses it.

    \b
    Example:
        osrerank setup --model ./ms-marco-MiniLM-L-6-v2 --index my-docs --document-fields title,body
    """
    print_steps("osrerank setup", Reranker(resolve_settings(kwargs), progress).setup(create_index=create_index).steps)


@click.command(context_settings=CONTEXT)
@click.option("--keep-index", is_flag=True, help="Leave the index in place.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@settings_options(*EVERY)
@friendly_errors
def teardown(keep_index: bool, dry_run: bool, **kwargs: Any) -> None:
    """Remove pipeline, model, model group, connector, endpoint (the stand-in, or SageMaker resources
    tagged created-by=osrerank) and the kit-created index of a setup: the one --pipeline names, else the
    latest (it starts from the settings setup recorded; flags still override).

    \b
    Example:
        osrerank teardown --keep-index --dry-run
    """
    settings = resolve_settings(kwargs, from_record=True)
    removed = Reranker(settings, progress).teardown(keep_index=keep_index, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb}: " + (", ".join(removed) if removed else "nothing (no kit-created objects found)"))


@click.command(context_settings=CONTEXT)
@settings_options(*EVERY)
@friendly_errors
def demo(**kwargs: Any) -> None:
    """The OpenSearch tutorial, end to end on this machine: local cluster, local model stand-in
    (SigV4-checked), the tutorial's four passages, setup, and the reranked search.

    \b
    Example:
        osrerank demo --model ../shared/models/minilm-l6-random-head
    """
    from ..demo import TUTORIAL_QUERY, run_demo

    settings = resolve_settings(kwargs)
    result, hits = run_demo(settings, progress)
    print_steps("osrerank setup", result.steps)
    out.print(f"\nquery: {TUTORIAL_QUERY}")
    print_hits(hits, settings.index.document_fields, width=200)
    out.print(
        "\nLeft running: the local OpenSearch and the model stand-in, so you can search again. "
        "Remove what setup made with `osrerank teardown`; stop the node with `osrerank cluster down`."
    )


@click.command(context_settings=CONTEXT)
@settings_options(*EVERY)
@friendly_errors
def doctor(**kwargs: Any) -> None:
    """Check the cluster, model, index and (after setup) the deployed model for known traps; each
    finding names its fix. Exits 1 when there is a problem. Starts from what setup recorded for the
    pipeline (--pipeline, else the latest setup).

    \b
    Example:
        osrerank doctor --index my-docs --document-fields title,body --window 50
    """
    from rich.table import Table

    from ..doctor import diagnose

    findings = diagnose(resolve_settings(kwargs, from_record=True))
    table = Table(title="osrerank doctor", show_header=True)
    for column in ("check", "", "finding", "fix"):
        table.add_column(column)
    marks = {"ok": "[green]ok[/green]", "warning": "[yellow]warn[/yellow]", "problem": "[red]PROBLEM[/red]"}
    for f in findings:
        table.add_row(f.check, marks[f.level], f.message, f.fix)
    out.print(table)
    if any(f.level == "problem" for f in findings):
        raise SystemExit(1)


@click.command(context_settings=CONTEXT)
def status() -> None:
    """List what setup made and with which settings, the latest first (later commands start from these).

    \b
    Example:
        osrerank status
    """
    from ..records import all_records

    records = all_records()
    if not records:
        out.print("nothing set up (no record of a setup on this machine): run osrerank setup")
        return
    for r in records:
        s = r["settings"]
        index, pipeline = s.get("index", {}), s.get("pipeline", {})
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.get("at", 0)))
        out.print(f"[bold]{r['pipeline']}[/bold] (set up {when})", highlight=False)
        out.print(
            f"  target {s.get('target')}, model {s.get('model', {}).get('path')}, index {index.get('name')} "
            f"({', '.join(index.get('document_fields', []))}), window {pipeline.get('window') or '-'}",
            highlight=False,
        )
        out.print(
            "  made: " + ", ".join(f"{step} {found}" for step, found in r.get("steps", {}).items()), highlight=False
        )


@click.command(context_settings=CONTEXT)
def targets() -> None:
    """List the deploy targets (--target).

    \b
    Example:
        osrerank targets
    """
    from ..targets import TARGETS

    for name, target in TARGETS.items():
        out.print(f"{name:12} {target.summary}", highlight=False)


COMMANDS = [deploy, setup, teardown, demo, doctor, status, targets]
