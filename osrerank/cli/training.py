"""``osrerank train``: a reranker trained on your own judgments, evaluated before and after, deployed if asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..eval import run_eval
from ..reranker import Reranker
from ..train import TrainOptions, check_start, train, write_training_report
from .common import CONTEXT, EVERY, friendly_errors, out, progress, resolve_settings, settings_options
from .evaluate import bars


@click.command(name="train", context_settings=CONTEXT)
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), required=True, help="BEIR folder.")
@click.option("--split", default="train", show_default=True, help="qrels/<split>.tsv to train on.")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the model."
)
@click.option("--max-queries", type=click.IntRange(min=2), help="Train on the first N judged queries only.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after N optimizer steps (a quick run).")
@click.option(
    "--loss",
    type=click.Choice(["lambda", "bce", "cmnrl"]),
    default="lambda",
    show_default=True,
    help="LambdaLoss over each query's list, BinaryCrossEntropyLoss on pairs, or CachedMNRL.",
)
@click.option("--epochs", type=float, default=1.0, show_default=True, help="Passes over the training queries.")
@click.option(
    "--negatives",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="BM25-mined negatives per query (fewer: faster steps). --max-length sets the training length [256].",
)
@click.option("--new-head", is_flag=True, help="Start from an encoder: train a fresh one-logit head on it.")
@click.option(
    "--eval-top-k",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Rerank window of the before/after evaluation on the test split (0: none).",
)
@click.option("--deploy", is_flag=True, help="Then set up the pipeline with the trained model (replacing the old one).")
@settings_options(*EVERY)
@friendly_errors
def train_command(
    dataset: Path,
    split: str,
    out_dir: Path,
    max_queries: int | None,
    max_steps: int | None,
    loss: str,
    epochs: float,
    negatives: int,
    new_head: bool,
    eval_top_k: int,
    deploy: bool,
    **kwargs: Any,
) -> None:
    """Train a cross-encoder on DATASET's judgments, with hard negatives mined by BM25 through the cluster.

    Writes OUT: PyTorch weights, onnx/model.onnx (checked against PyTorch), the tokenizer, and TRAINING.md with
    the test split's nDCG@10 through the cluster for BM25, the starting model and the trained one.

    train stays encoder-only: a decoder (LLM) reranker (--kind decoder, a causal-LM folder) is refused.

    \b
    Example:
        osrerank train --dataset ../shared/data/beir/scifact --model ./my-cross-encoder --out ./scifact-reranker
    """
    settings = resolve_settings(kwargs)
    check_start(settings.model.path, new_head, settings.model.kind)  # before the cluster starts
    cluster = Reranker(settings, progress).cluster(start=True)
    options = TrainOptions(
        model=settings.model.path,
        out=out_dir,
        loss=loss,  # type: ignore[arg-type]
        epochs=epochs,
        max_steps=max_steps,
        new_head=new_head,
        negatives=negatives,
        max_length=settings.model.max_length or TrainOptions.max_length,
    )
    index = settings.eval_index(dataset.name)
    with bars() as tick:
        result = train(cluster, index, dataset, options, split=split, max_queries=max_queries, progress=tick)
    out.print(f"trained in {result.seconds / 60:.1f} min on {result.examples} queries; best held-out {result.best}")
    evals: dict[str, dict[str, float]] = {}
    if eval_top_k:
        for label, model in (("start", settings.model.path), ("trained", str(out_dir))):
            tried = settings.updated(model={"path": model}, name=f"{settings.name}-train-{label}")
            reranker = Reranker(tried, progress)
            try:
                model_id = reranker.setup().model_id
                with bars() as tick:
                    arms = run_eval(reranker.cluster(), tried, model_id, dataset, top_k=eval_top_k, progress=tick).arms
                evals.setdefault(f"BM25 (top {eval_top_k})", arms["bm25"].metrics)
                evals[f"{label}: {model}"] = arms["bm25+rerank"].metrics
            finally:
                reranker.teardown(keep_index=True)
        for name, metrics in evals.items():
            out.print(f"{name:60} nDCG@10 {metrics['nDCG@10']:.4f}")
    note = f"{dataset} qrels/{split}.tsv" + (f", first {max_queries} queries" if max_queries else "")
    out.print(f"wrote {write_training_report(result, options, note, evals)}")
    if deploy:
        steps = Reranker(settings.updated(model={"path": str(out_dir)}), progress).setup().steps
        out.print(f"deployed: model {steps['model'].id}, pipeline {settings.pipeline.name} now reranks with {out_dir}")


COMMANDS = [train_command]
