"""Step: train a cross-encoder on the user's own judgments, with hard negatives mined through their index.

The first stage the pipeline reranks (BM25 over the indexed text) mines the negatives: each training
query's top hits minus its judged positives. sentence-transformers' ``CrossEncoderTrainer`` trains on
them (``LambdaLoss`` over each query's list by default; ``BinaryCrossEntropyLoss`` on pairs, or
``CachedMultipleNegativesRankingLoss``), keeping the checkpoint that reranks a held-out slice of the
training queries best. The output folder is what every target deploys: PyTorch weights, the tokenizer,
``onnx/model.onnx`` (checked against PyTorch), and ``TRAINING.md``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, ModelLoadError, ToolMissingError
from .eval import Dataset, ensure_corpus
from .ingest import RERANK_FIELD
from .model import check_model, export_onnx, pytorch_folder, read_json
from .opensearch import Cluster
from .search import search_body

__all__ = ["TrainOptions", "TrainResult", "mine", "train", "write_training_report"]

Loss = Literal["lambda", "bce", "cmnrl"]


@dataclass(frozen=True)
class TrainOptions:
    """What to train from, on what, and how long. The README's SciFact run on 2 CPU cores (28.6 min) passes
    --max-length 128 --negatives 7 --epochs 2: the longer defaults cost about 7x per step on a CPU."""

    model: str
    out: Path
    loss: Loss = "lambda"
    negatives: int = 15
    mine_k: int = 30
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    learning_rate: float = 3e-5
    max_length: int = 256
    held_out: float = 0.1
    new_head: bool = False
    seed: int = 12


@dataclass
class Example:
    query: str
    positives: list[str]
    negatives: list[str]


@dataclass
class TrainResult:
    out: Path
    seconds: float
    examples: int
    held_out: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    onnx_max_logit_diff: float = 0.0


def check_start(model: str, new_head: bool, kind: str = "auto") -> None:
    """Refuse a model folder that cannot be trained into a reranker, before anything runs: train stays
    encoder-only, so a decoder (LLM) reranker (``kind``, or a causal LM's folder whatever the kind) is refused too."""
    folder = check_model(model)
    architectures = read_json(folder / "config.json").get("architectures") or [] if folder is not None else []
    if kind == "decoder" or any(a.endswith("ForCausalLM") for a in architectures):
        what = ", ".join(architectures) or "--kind decoder"
        raise ModelLoadError(
            f"{model} is a decoder (LLM) reranker ({what}): osrerank train stays encoder-only (a cross-encoder, or "
            "an encoder with --new-head); serve the decoder as it is with --target standin or torchserve"
        )
    if folder is None:
        return  # a hub id: sentence-transformers fetches it
    classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    if not classifier and not new_head:
        raise ModelLoadError(
            f"{model} has no sequence-classification head ({', '.join(architectures) or 'no architectures given'}): "
            "pass --new-head to train a fresh one-logit head on this encoder"
        )
    if classifier and len(read_json(folder / "config.json").get("id2label", {"0": "x"})) != 1:
        raise ModelLoadError(f"{model} is a classifier with several labels: a reranker has one logit")


def mine(
    cluster: Cluster, index: str, data: Dataset, k: int, progress: Callable[[str, int, int], None]
) -> list[Example]:
    """Each judged query's positives, and as negatives its BM25 top ``k`` minus the positives."""
    texts: dict[str, str] = {}
    examples = []
    for n, (qid, query) in enumerate(data.queries.items(), 1):
        hits = cluster.call("POST", f"/{index}/_search", search_body(query, (RERANK_FIELD,), k, rerank=False))["hits"][
            "hits"
        ]
        for h in hits:
            texts[h["_id"]] = h["_source"][RERANK_FIELD]
        judged = {d for d, grade in data.qrels[qid].items() if grade > 0}
        missing = [d for d in judged if d not in texts]
        if missing:
            found = cluster.call(
                "POST", f"/{index}/_search", {"query": {"ids": {"values": missing}}, "size": len(missing)}
            )
            texts.update({h["_id"]: h["_source"][RERANK_FIELD] for h in found["hits"]["hits"]})
        positives = [texts[d] for d in judged if d in texts]
        if positives:
            examples.append(Example(query, positives, [texts[h["_id"]] for h in hits if h["_id"] not in judged]))
        progress("mining negatives", n, len(data.queries))
    if not examples:
        raise ConfigError(f"no judged document of {data.path} is in index {index}: nothing to train on")
    return examples


def _datasets(examples: list[Example], options: TrainOptions) -> Any:
    from datasets import Dataset as HFDataset

    if options.loss == "bce":
        rows = [
            {"query": e.query, "document": d, "label": float(label)}
            for e in examples
            for d, label in [*((p, 1) for p in e.positives), *((n, 0) for n in e.negatives[: options.negatives])]
        ]
        return HFDataset.from_list(rows)
    if options.loss == "cmnrl":
        rows = [
            {"query": e.query, "positive": p, "negative": e.negatives[0]}
            for e in examples
            for p in e.positives
            if e.negatives
        ]
        return HFDataset.from_list(rows)
    rows = []
    for e in examples:
        docs = e.positives + e.negatives[: options.negatives]
        rows.append(
            {
                "query": e.query,
                "docs": docs,
                "labels": [1.0] * len(e.positives) + [0.0] * (len(docs) - len(e.positives)),
            }
        )
    return HFDataset.from_list(rows)


def train(
    cluster: Cluster,
    index: str,
    dataset: Path,
    options: TrainOptions,
    *,
    split: str = "train",
    max_queries: int | None = None,
    progress: Callable[[str, int, int], None] = lambda *_: None,
    on_loss: Callable[[int, float], None] = lambda *_: None,
) -> TrainResult:
    """Mine, train, save the best checkpoint, export and check ONNX; returns what happened."""
    try:
        import torch
        from sentence_transformers.cross_encoder import (
            CrossEncoder,
            CrossEncoderTrainer,
            CrossEncoderTrainingArguments,
            losses,
        )
        from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
        from transformers import TrainerCallback
    except ImportError:
        raise ToolMissingError("osrerank train needs: pip install 'osrerank[train]'") from None
    check_start(options.model, options.new_head)
    data = Dataset.read(dataset, split, max_queries, strict=True)
    ensure_corpus(cluster, index, data.corpus, progress)
    examples = mine(cluster, index, data, options.mine_k, progress)
    random.Random(options.seed).shuffle(examples)
    held = max(1, int(len(examples) * options.held_out)) if len(examples) > 1 else 0
    evaluation, training = examples[:held], examples[held:]
    if not training:
        raise ConfigError("too few judged queries to hold some out and train on the rest: give more")

    start = pytorch_folder(options.model)
    model = CrossEncoder(
        str(start), num_labels=1, max_length=options.max_length, device="cuda" if torch.cuda.is_available() else "cpu"
    )
    loss = {
        "lambda": lambda: losses.LambdaLoss(model),
        "bce": lambda: losses.BinaryCrossEntropyLoss(model),
        "cmnrl": lambda: losses.CachedMultipleNegativesRankingLoss(model),
    }[options.loss]()
    evaluator = CrossEncoderRerankingEvaluator(
        [
            {"query": e.query, "positive": e.positives, "documents": e.positives + e.negatives[: options.negatives]}
            for e in evaluation
        ],
        at_k=10,
        name="held-out",
        always_rerank_positives=False,
    )
    steps_per_epoch = max(1, len(training) // options.batch_size)
    check_every = max(10, steps_per_epoch // 4)
    result = TrainResult(options.out, 0.0, len(training), len(evaluation))

    class Report(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            progress("training", state.global_step, state.max_steps)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                result.losses.append((state.global_step, float(logs["loss"])))
                on_loss(state.global_step, float(logs["loss"]))

    checkpoints = options.out / "checkpoints"
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        warmup_steps=max(1, int(0.1 * (options.max_steps or steps_per_epoch * options.epochs))),
        eval_strategy="steps",
        eval_steps=check_every,
        save_strategy="steps",
        save_steps=check_every,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_held-out_ndcg@10",
        logging_steps=max(1, check_every // 5),
        seed=options.seed,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=_datasets(training, options),
        loss=loss,
        evaluator=evaluator,
        callbacks=[Report()],
    )
    started = time.perf_counter()
    trainer.train()
    result.seconds = time.perf_counter() - started
    result.best = {k: float(v) for k, v in evaluator(model).items()}
    model.save_pretrained(str(options.out))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (start / name).exists() and not (options.out / name).exists():
            (options.out / name).write_bytes((start / name).read_bytes())
    onnx_file = export_onnx(options.out, options.out / "onnx" / "model.onnx", classifier=True)
    result.onnx_max_logit_diff = _check_onnx(model, onnx_file, options.out, evaluation)
    import shutil

    shutil.rmtree(checkpoints, ignore_errors=True)
    return result


def _check_onnx(model: Any, onnx_file: Path, folder: Path, held_out: list[Example]) -> float:
    """The exported graph scores the held-out pairs as PyTorch does, to 1e-4 (logits)."""
    import numpy as np

    from .scorer import ModelOptions, PairScorer

    pairs = [(e.query, d) for e in held_out for d in (e.positives + e.negatives)[:8]][:256]
    if not pairs:
        return 0.0
    torch_logits = np.asarray(model.predict(pairs, activation_fn=__import__("torch").nn.Identity()), dtype=np.float64)
    scorer = PairScorer(folder, ModelOptions(path=str(folder), activation="none"))
    # PyTorch scores with the training max_length: the ONNX scorer is cut to the same length for the check
    scorer.tokenizer.enable_truncation(model.max_length, strategy="longest_first")
    diff = float(np.max(np.abs(scorer.score(pairs).values - torch_logits)))
    if diff > 1e-4:
        raise ModelLoadError(
            f"the exported ONNX graph differs from PyTorch by {diff:.2g} on held-out pairs (limit 1e-4)"
        )
    return diff


def write_training_report(
    result: TrainResult, options: TrainOptions, data_note: str, evals: dict[str, dict[str, float]]
) -> Path:
    """TRAINING.md (and training-loss.png) in the output folder."""
    out = options.out
    lines = [
        f"# {out.name}: a cross-encoder trained by osrerank",
        "",
        f"- Started from: `{options.model}`; data: {data_note}",
        f"- Training queries: {result.examples}; held out for choosing the checkpoint: {result.held_out}",
        f"- Settings: `{json.dumps({k: str(v) for k, v in asdict(options).items()})}`",
        f"- Training time: {result.seconds / 60:.1f} min on {_device()}",
        f"- Best held-out checkpoint: {json.dumps({k: round(v, 4) for k, v in result.best.items()})}",
        f"- ONNX export: largest logit difference from PyTorch on held-out pairs {result.onnx_max_logit_diff:.2g}",
        "",
        "## Evaluation on the test split (through the cluster)",
        "",
        *(
            [
                "| model | nDCG@10 | RR@10 | R@100 |",
                "|---|---|---|---|",
                *(
                    f"| {name} | {m.get('nDCG@10', 0):.4f} | {m.get('RR@10', 0):.4f} | {m.get('R@100', 0):.4f} |"
                    for name, m in evals.items()
                ),
            ]
            if evals
            else ["Not run (`--eval-top-k 0`): `osrerank eval --model OUT` measures it."]
        ),
        "",
        "## Loss",
        "",
        "![training loss](training-loss.png)",
        "",
        "| step | loss |",
        "|---|---|",
        *(f"| {s} | {loss:.4f} |" for s, loss in result.losses[:: max(1, len(result.losses) // 20)]),
    ]
    (out / "TRAINING.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([s for s, _ in result.losses], [loss for _, loss in result.losses])
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        fig.tight_layout()
        fig.savefig(out / "training-loss.png", dpi=100)
        plt.close(fig)
    except ImportError:
        pass
    return out / "TRAINING.md"


def _device() -> str:
    import os

    import torch

    return "GPU" if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
