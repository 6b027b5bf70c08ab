"""`osrerank eval` against figures worked out by hand (tests/data/tiny-beir/WORKING.md).

The command runs as a user runs it, on the real cluster. Its model server scores each document from
a fixed table, so the reranked order, like the BM25 order, is known without running the kit. This
checks run building, id mapping, the window and the metrics together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..conftest import REPO, ServerThread
from .rest import Rest

pytestmark = pytest.mark.integration

DATASET = REPO / "tests" / "data" / "tiny-beir"

#: From WORKING.md, by hand.
EXPECTED = {
    "bm25": {"nDCG@10": 0.2731313, "RR@10": 0.2222222, "R@100": 0.4444444},
    "bm25+rerank": {"nDCG@10": 0.5462626, "RR@10": 0.6666667, "R@100": 0.4444444},
}
EXPECTED_RUNS = {
    "bm25": {"q1": ["a4", "b3", "c2"], "q2": ["g3", "h2", "i1"]},
    "bm25+rerank": {"q1": ["c2", "b3", "a4"], "q2": ["i1", "h2", "g3"]},
}


def table_server() -> Starlette:
    """TorchServe-style: pairs in, the table's score for each document out (-1 for a text not in it)."""
    table = json.loads((DATASET / "rerank_scores.json").read_text())

    async def predict(request: Request) -> JSONResponse:
        return JSONResponse([table.get(pair["text_pair"], -1.0) for pair in await request.json()])

    return Starlette(routes=[Route("/predictions/{name}", predict, methods=["POST"])])


def osrerank(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSRERANK_") or k == "OSRERANK_CACHE"}
    command = [sys.executable, "-m", "osrerank", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def read_runs(out: Path) -> dict[str, dict[str, list[str]]]:
    runs: dict[str, dict[str, list[str]]] = {}
    for arm in EXPECTED:
        for line in (out / f"{arm}.run").read_text().splitlines():
            qid, _, doc, rank, _score, _tag = line.split()
            ranked = runs.setdefault(arm, {}).setdefault(qid, [])
            assert int(rank) == len(ranked) + 1
            ranked.append(doc)
    return runs


def test_eval_equals_the_hand_worked_figures(local_cluster, tmp_path):
    common = ["--opensearch-url", local_cluster.url, "--name", "tiny", "--pipeline", "tiny-rerank"]
    with ServerThread(table_server()) as server:
        try:
            proc = osrerank(
                "eval",
                "--dataset",
                str(DATASET),
                "--top-k",
                "3",
                "--out",
                str(tmp_path),
                "--template",
                "torchserve-pairs",
                "--endpoint-url",
                f"{server.url}/predictions/tiny",
                *common,
            )
            assert proc.returncode == 0, proc.stderr
            result = json.loads((tmp_path / "results.json").read_text())
            assert result["queries"] == 3 and result["documents"] == 9
            for arm, figures in EXPECTED.items():
                for measure, value in figures.items():
                    assert result["arms"][arm]["metrics"][measure] == pytest.approx(value, abs=1e-6), (arm, measure)
            assert read_runs(tmp_path) == EXPECTED_RUNS
        finally:
            teardown = osrerank("teardown", *common)
    assert teardown.returncode == 0, teardown.stderr
    assert Rest(local_cluster.url).status("/tiny-eval-tiny-beir") == 404
