"""What the cluster benchmarks share: a running local cluster with the kit set up over SciFact."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from osrerank.config.environment import get
from osrerank.eval import RERANK_FIELD, ensure_corpus, ensure_eval_pipeline, load_queries
from osrerank.opensearch import Cluster
from osrerank.reranker import Reranker
from osrerank.search import search_body
from osrerank.settings import Settings
from osrerank.targets.local_secrets import local_secrets
from osrerank.targets.standin import StandInProcess

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCIFACT = Path(get("OSRERANK_SCIFACT") or SHARED / "data/beir/scifact")
DEFAULT_MODEL = get("OSRERANK_TEST_MODEL") or str(SHARED / "models/minilm-l6-random-head")
NAME = "bench"
INDEX = f"{NAME}-eval-scifact"  # one copy of the corpus, shared by both targets


def name_for(target: str, variant: str = "") -> str:
    return (NAME if target == "standin" else f"{NAME}-{target}") + (f"-{variant}" if variant else "")


def prepare(
    model: str,
    kind: str = "cross-encoder",
    target: str = "standin",
    precision: str = "fp32",
    max_batch: int | None = None,
    cache_mb: float = 0,
    variant: str = "",
) -> tuple[Reranker, Cluster, list[str]]:
    """Set up (idempotent) and index SciFact once; returns the reranker, cluster and the test queries. With
    ``max_batch`` the pipeline calls the model once per hit (setup --max-batch); ``cache_mb``: the stand-in's
    score cache (off by default here, so the model is what is timed); ``variant`` names a second setup beside
    the first (its own stand-in and pipeline)."""
    name = name_for(target, variant)
    settings = Settings(
        name=name,
        target=target,
        model={"path": model, "kind": kind, "precision": precision},
        pipeline={"name": f"{name}-rerank", "max_batch": max_batch},
        connector={"timeout_s": 60},
        targets={"standin": {"cache_mb": cache_mb}},
    )
    reranker = Reranker(settings, lambda m: print(f"• {m}", file=sys.stderr, flush=True))  # stdout: the figures
    model_id = reranker.setup().model_id
    cluster = reranker.cluster()
    ensure_corpus(cluster, INDEX, SCIFACT / "corpus.jsonl", lambda *_: None)
    ensure_eval_pipeline(cluster, settings, model_id)
    queries = load_queries(SCIFACT / "queries.jsonl")
    judged = [line.split("\t")[0] for line in (SCIFACT / "qrels/test.tsv").read_text().splitlines()[1:]]
    return reranker, cluster, [queries[q] for q in dict.fromkeys(judged)]


def search(
    cluster: Cluster, query: str, k: int, rerank: bool, target: str = "standin", variant: str = ""
) -> dict[str, Any]:
    body = search_body(query, (RERANK_FIELD,), k, rerank=rerank, source=[RERANK_FIELD])
    params = {"search_pipeline": Settings(name=name_for(target, variant)).eval_pipeline} if rerank else {}
    return cluster.call("POST", f"/{INDEX}/_search", body, params=params, timeout=120)


def direct_model_call(query: str, docs: list[str], session: requests.Session, variant: str = "") -> list[float]:
    """The stand-in's SageMaker route, signed like ml-commons signs it: the model-only cost."""
    url, region, credentials = _endpoint(variant)
    body = json.dumps({"inputs": [{"text": query, "text_pair": d} for d in docs], "parameters": {"truncation": True}})
    request = AWSRequest("POST", url, data=body.encode(), headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "sagemaker", region).add_auth(request)
    reply = session.post(url, data=body.encode(), headers=dict(request.headers), timeout=120)
    reply.raise_for_status()
    return [r["score"] for r in reply.json()]


@functools.cache
def _endpoint(variant: str) -> tuple[str, str, Credentials]:
    """The bench stand-in's URL, region and key, looked up once: finding it pings it over a new connection,
    which a timed call must not pay (it made P2's cached stand-in share read 10 ms for a 2 ms call)."""
    name = name_for("standin", variant)
    info = StandInProcess(name).info()
    assert info is not None, "the bench endpoint is not running"
    local = local_secrets()
    url = info.url_for("sagemaker-hf-text-classification", name)
    return url, info.server_spec.region, Credentials(local.access_key, local.secret_key)
