"""P6: scoring speed and exactness of the decoder (LLM) rerankers: PyTorch against the kit, in process and over HTTP.

Models: the tiny random-weight test folders of both formats, ``qwen3-reranker-tiny`` (raw = logit("yes") -
logit("no")) and ``bge-gemma-tiny`` (raw = logit("Yes")), built by ``tests/models/build_decoder_models.py`` into
the kit cache as the tests build them (about 10 s, once), or ``--models DIR`` holding both. **Tiny models (hidden
64, 2 layers) say nothing about a real LLM's speed**: the figures compare serving paths, tokenization included.

Pairs: ``--queries`` SciFact test queries x their BM25 top ``--k`` (``_pairs.py``), title + ". " + text, cut to
``--max-length`` (512) tokens as each format's own code cuts them. Rows, each scoring every length-sorted slice of
``--batch-size`` pairs in a shuffled order within one pass (so a burst of load on the machine falls on every row
alike), ``--rounds`` passes:

- ``transformers``: the PyTorch reference: the model card's recipe (the input ids and ``raw_scores`` of
  build_decoder_models.py, which made the folders' reference_scores.json), ``AutoModelForCausalLM`` fp32 with
  transformers' default attention (sdpa: the reference file's eager attention runs 2x slower here), a left-padded
  batch, the last position's logits; checked first against reference_scores.json (27 pairs);
- ``sentence-transformers``: ``CrossEncoder(folder).predict`` (its ``LogitScore`` module, sentence-transformers
  >= 5.4, reading the folder's own ST files): it renders the chat template and cuts the whole text, which is
  the Qwen3 card's truncation but not the bge recipe's (query to 3/4 of the length, then the passage), so on
  bge-gemma the pairs the recipe truncates differ;
- ``kit``: ``load_scorer`` (the ONNX Runtime graph of the last position's answer logits), in this process;
- ``stand-in``: ``osrerank serve --model DIR --decoder-format F --max-length 512 --no-auth --cache-mb 0`` in its
  own process on a port in 18700-18799 (its defaults otherwise: model batches of at most 2,048 tokens, so 4 pairs
  at 512), one SageMaker-HF request (``/invocations``) per slice with ``function_to_apply: none`` (the raw
  value); the scores (sigmoid) are read after timing, with one more pass.

Each row: pairs/s (best round), its ratio to the transformers row (per round, median), max |raw - PyTorch| and
max |score - PyTorch score| over all pairs (PyTorch score: the sigmoid of its raw value, p(yes) for Qwen3), and
exact: raw within 1e-4 and score within 1e-5 on every pair (with the number of pairs that are).

    pip install -e '.[bench]'
    python benchmarks/p6_decoder.py [--queries 8] [--k 25] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import requests
from _pairs import scifact_groups
from _timing import interleaved

from osrerank.config.environment import get
from osrerank.cpu import cpu_info
from osrerank.paths import cache_root
from osrerank.scorer import ModelOptions, load_scorer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BUILDER = REPO / "tests" / "models" / "build_decoder_models.py"
FOLDERS = {"qwen3-reranker": "qwen3-reranker-tiny", "bge-reranker-gemma": "bge-gemma-tiny"}
RAW_TOLERANCE, SCORE_TOLERANCE = 1e-4, 1e-5
PORTS = range(18700, 18800)
REFERENCE = "transformers"
Pairs = list[tuple[str, str]]
Score = Callable[[Pairs], np.ndarray]


def builder() -> ModuleType:
    """tests/models/build_decoder_models.py: its recipes are the PyTorch reference (it does not import osrerank)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.models.build_decoder_models")


def model_folders(given: Path | None) -> dict[str, Path]:
    """The tiny decoder folders: ``given``, or where tests/conftest.py's ``decoder_models`` fixture builds them."""
    out = given or cache_root() / "test-models" / f"decoders-{hashlib.sha256(BUILDER.read_bytes()).hexdigest()[:12]}"
    folders = {fmt: out / name for fmt, name in FOLDERS.items()}
    if not all((f / "reference_scores.json").exists() for f in folders.values()):
        print(f"building the tiny decoder models into {out}", file=sys.stderr)
        subprocess.run([sys.executable, str(BUILDER), str(out), "--no-st-check"], check=True, timeout=900)
    return folders


def sigmoid(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw))


def transformers_row(folder: Path, fmt: str, max_length: int) -> Score:
    """Raw values as the model card computes them, batched with left padding (as the card and ST run them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build = builder()
    recipe = build.qwen3_ids if fmt == "qwen3-reranker" else build.bge_gemma_ids
    reference = json.loads((folder / "reference_scores.json").read_text())
    true_id, false_id = reference["true_token_id"], reference["false_token_id"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32).eval()
    pad = tokenizer.pad_token_id

    def score(pairs: Pairs) -> np.ndarray:
        ids = [recipe(tokenizer, q, d, max_length) for q, d in pairs]
        width = max(len(x) for x in ids)
        batch = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.inference_mode():
            logits = model(input_ids=batch, attention_mask=mask, logits_to_keep=1).logits[:, -1]
        return build.raw_scores(logits, true_id, false_id).double().numpy()

    return score


def sentence_transformers_row(folder: Path, max_length: int, batch_size: int) -> Score:
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu", max_length=max_length)
    return lambda pairs: np.asarray(
        model.predict(pairs, batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False),
        dtype=np.float64,
    ).reshape(-1)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise SystemExit(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@contextlib.contextmanager
def stand_in(folder: Path, fmt: str, max_length: int, log: Path) -> Iterator[str]:
    """``osrerank serve`` on the folder in its own process (open, no score cache); stopped on the way out."""
    port = free_port()
    command = [sys.executable, "-m", "osrerank", "serve", "--model", str(folder), "--decoder-format", fmt]
    command += ["--max-length", str(max_length), "--port", str(port), "--no-auth", "--cache-mb", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"osrerank serve exited ({process.returncode}): {log.read_text()[-1500:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/ping", timeout=1).ok:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"osrerank serve did not answer /ping in 120 s: {log.read_text()[-1500:]}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_row(url: str, session: requests.Session, raw: bool) -> Score:
    """The stand-in's SageMaker HF route: the raw value (``function_to_apply: none``) or the score."""

    def score(pairs: Pairs) -> np.ndarray:
        parameters: dict[str, Any] = {"truncation": True, **({"function_to_apply": "none"} if raw else {})}
        body = {"inputs": [{"text": q, "text_pair": d} for q, d in pairs], "parameters": parameters}
        reply = session.post(f"{url}/invocations", json=body, timeout=300)
        reply.raise_for_status()
        return np.array([r["score"] for r in reply.json()], dtype=np.float64)

    return score


def in_order(score: Score, pairs: Pairs, slices: list[list[int]]) -> np.ndarray:
    out = np.zeros(len(pairs))
    for chunk in slices:
        out[chunk] = score([pairs[i] for i in chunk])
    return out


def reference_check(folder: Path, score: Score) -> float:
    """Max |raw - reference_scores.json| of the transformers row over the folder's 27 reference pairs (nasty texts
    included), in one left-padded batch: that this row is the reference the tests hold the kit to."""
    rows = json.loads((folder / "reference_scores.json").read_text())["pairs"]
    got = score([(r["query"], r["document"]) for r in rows])
    return float(np.max(np.abs(got - np.array([r["raw"] for r in rows]))))


def bench_format(fmt: str, folder: Path, pairs: Pairs, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    kit = load_scorer(ModelOptions(path=str(folder), decoder_format=fmt, max_length=args.max_length))
    tokens = np.asarray(kit.encode(pairs).tokens)
    order = sorted(range(len(pairs)), key=lambda i: int(tokens[i]))
    slices = [order[s : s + args.batch_size] for s in range(0, len(order), args.batch_size)]
    rows: dict[str, Score] = {REFERENCE: transformers_row(folder, fmt, args.max_length)}
    not_run: dict[str, str] = {}
    check = reference_check(folder, rows[REFERENCE])
    if check > RAW_TOLERANCE:
        raise SystemExit(f"{folder.name}: the transformers row differs from reference_scores.json by {check:.3g}")
    try:
        rows["sentence-transformers"] = sentence_transformers_row(folder, args.max_length, args.batch_size)
    except Exception as error:  # not installed, or too old to load a causal LM (LogitScore came in 5.4)
        not_run["sentence-transformers"] = f"{type(error).__name__}: {error}".splitlines()[0]
    rows["kit"] = lambda p: kit.score(p).values
    scores: dict[str, np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(requests.Session())
        try:
            url = stack.enter_context(stand_in(folder, fmt, args.max_length, log))
        except RuntimeError as error:
            not_run["stand-in"] = str(error).splitlines()[0]
        else:
            rows["stand-in"] = http_row(url, session, raw=True)
        rates, raw = interleaved(rows, pairs, slices, args.rounds, folder.name)
        scores["kit"] = kit.predict(pairs)
        if "stand-in" in rows:
            scores["stand-in"] = in_order(http_row(url, session, raw=False), pairs, slices)
    want_raw = raw[REFERENCE]
    want = sigmoid(want_raw)
    out_rows = []
    for name, got_raw in raw.items():
        got = scores.get(name, sigmoid(got_raw))
        raw_diff, score_diff = np.abs(got_raw - want_raw), np.abs(got - want)
        ok = (raw_diff <= RAW_TOLERANCE) & (score_diff <= SCORE_TOLERANCE)
        out_rows.append(
            {
                "row": name,
                "pairs_per_s": round(max(rates[name]), 1),
                "ratio": round(statistics.median(r / t for r, t in zip(rates[name], rates[REFERENCE], strict=True)), 2),
                "max_abs_raw_diff": float(f"{float(raw_diff.max()):.3g}"),
                "max_abs_score_diff": float(f"{float(score_diff.max()):.3g}"),
                "exact": bool(ok.all()),
                "exact_pairs": int(ok.sum()),
            }
        )
    return {
        "format": fmt,
        "model": str(folder),
        "mean_tokens": round(float(tokens.mean()), 1),
        "at_cap": int((tokens >= kit.max_length).sum()),
        "reference_check_max_abs_diff": float(f"{check:.3g}"),
        "rows": out_rows,
        "not_run": not_run,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="a folder holding qwen3-reranker-tiny and bge-gemma-tiny")
    parser.add_argument("--dataset", type=Path, default=Path(get("OSRERANK_SCIFACT") or SHARED / "data/beir/scifact"))
    parser.add_argument("--queries", type=int, default=8, help="SciFact test queries [default: 8 -> 200 pairs]")
    parser.add_argument("--k", type=int, default=25, help="BM25 hits per query [default: 25]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--format", choices=list(FOLDERS), action="append", help="only this format (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    import sentence_transformers
    import torch
    import transformers

    cpu = cpu_info()
    folders = model_folders(args.models)
    pairs = [(q, d) for q, docs in scifact_groups(args.dataset, queries=args.queries, k=args.k) for d in docs]
    with tempfile.TemporaryDirectory(prefix="p6-") as tmp:
        log = Path(tmp) / "standin.log"
        results = [bench_format(f, folders[f], pairs, args, log) for f in args.format or list(FOLDERS)]
    result = {
        "cpu": cpu.shown(),
        "threads": os.cpu_count() or 1,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
        "pairs": {"kind": "scifact", "queries": args.queries, "k": args.k, "count": len(pairs)},
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "formats": results,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"CPU: {cpu.model} ({result['threads']} threads); AVX-512/VNNI/BF16/AMX flags: {cpu.flags_shown()}")
    print(
        f"pairs: {len(pairs)} (SciFact {args.queries} test queries x BM25 top {args.k}), max length "
        f"{args.max_length}, slices of {args.batch_size}, {args.rounds} rounds; "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    )
    for r in results:
        print(
            f"\n{Path(r['model']).name} ({r['format']}): mean {r['mean_tokens']} tokens, {r['at_cap']} pairs at the "
            f"cap; transformers row vs reference_scores.json: {r['reference_check_max_abs_diff']:.2g}"
        )
        print(f"{'row':<23}{'pairs/s':>9}{'x PyTorch':>11}{'max |raw diff|':>16}{'max |score diff|':>18}{'exact':>15}")
        for row in r["rows"]:
            exact = f"{'yes' if row['exact'] else 'no'} ({row['exact_pairs']}/{len(pairs)})"
            print(
                f"{row['row']:<23}{row['pairs_per_s']:>9.1f}{row['ratio']:>11.2f}{row['max_abs_raw_diff']:>16.3g}"
                f"{row['max_abs_score_diff']:>18.3g}{exact:>15}"
            )
        for name, why in r["not_run"].items():
            print(f"{name:<23}not run: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
