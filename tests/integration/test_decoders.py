"""The decoder (LLM) rerankers through the real cluster: each tiny decoder (qwen3-reranker, bge-reranker-gemma;
tests/models/build_decoder_models.py) served by a stand-in, behind a remote model on every rerank connector
template, scores all 27 reference pairs (nasty texts as documents and as queries) as PyTorch does, through
_predict and through a rerank search pipeline: the score (sigmoid) within 1e-5 and, where the template can return
raw values, the raw value within 1e-4. Once per (format, template, activation): the model and its connector are
the cost."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from osrerank.connector import delete_connector
from osrerank.ingest import create_index, delete_index, load_documents
from osrerank.kinds.decoder import FORMATS
from osrerank.ml_commons import MLCommons
from osrerank.pipeline import delete_pipeline, ensure_pipeline, render_pipeline
from osrerank.settings import Settings
from osrerank.templates import connector_template, list_templates

from ..conftest import start_standin
from .kit import one_node_only
from .test_connectors import make_model, predict, url

pytestmark = [
    pytest.mark.integration,
    one_node_only(
        "decoder rerankers depend on no cluster shape (one connector call per search, as for cross-encoders): "
        "the one-node lines run them on both OpenSearch lines"
    ),
]

TEMPLATES = list_templates("connectors", "rerank")
CASES = [
    (fmt, template, activation)
    for fmt in FORMATS
    for template in TEMPLATES
    for activation in ("sigmoid", "none")
    if activation == "sigmoid" or connector_template(template).raw_scores
]
INDEX = "decoder-reference-docs"


@pytest.fixture(scope="module")
def reference(decoder_models):
    """Each format's reference pairs grouped by query (one request each), in first-seen order."""
    grouped = {}
    for fmt, folder in decoder_models.items():
        data = json.loads((folder / "reference_scores.json").read_text())
        assert data["max_length"] == 512 and len(data["pairs"]) == 27
        groups: dict[str, list[dict]] = {}
        for row in data["pairs"]:
            groups.setdefault(row["query"], []).append(row)
        grouped[fmt] = groups
    return grouped


@pytest.fixture(scope="module")
def decoder_standins(decoder_models):
    """Per format, a stand-in answering scores (sigmoid) and one answering raw values (the TorchServe API has no
    way to ask for them), each with max_length 512; the formats start side by side, a format's two one after the
    other (the first converts the model to ONNX once, the second finds the conversion)."""
    processes, servers = [], {}

    def start(fmt):
        for activation in ("sigmoid", "none"):
            name = f"osrerank-test-decoder-{fmt}-{activation}"
            process, info = start_standin(name, decoder_models[fmt], max_length=512, activation=activation)
            processes.append(process)
            servers[fmt, activation] = info

    try:
        with ThreadPoolExecutor(len(FORMATS)) as pool:
            for started in [pool.submit(start, fmt) for fmt in FORMATS]:
                started.result()
        yield servers
    finally:
        for process in processes:
            process.stop()


@pytest.fixture(scope="module")
def reference_index(os_client, reference):
    """One index holding every reference document (ids in first-seen order); each search picks its query's."""
    rows = [r for groups in reference.values() for same in groups.values() for r in same]
    texts = list(dict.fromkeys(r["document"] for r in rows))
    create_index(os_client, INDEX, ["text"], recreate=True)
    try:
        load_documents(os_client, INDEX, [{"_id": str(i), "text": t} for i, t in enumerate(texts)])
        yield {t: str(i) for i, t in enumerate(texts)}
    finally:
        delete_index(os_client, INDEX)


def remove(cluster, settings):
    """Whatever a case made in the cluster, found by name (a failed registration leaves a connector, no model)."""
    ml = MLCommons(cluster)
    for connector in ml.find_connectors(settings.connector_name):
        delete_connector(ml, connector["id"])
    for group in ml.find_model_groups(settings.group_name):
        ml.delete_model_group(group["id"])


@pytest.fixture(scope="module")
def made(os_client):
    """Every case's settings, its model removed at the end of the module, side by side: removing a remote model
    that has predicted costs ml-commons about 2 s (its undeploy closes the connector's HTTP client), 16 times."""
    made: list[Settings] = []
    yield made
    with ThreadPoolExecutor(len(made) or 1) as pool:
        for removed in [pool.submit(remove, os_client, settings) for settings in made]:
            removed.result()


def received(server):
    return requests.get(f"{server.base_url}/_osrerank/received", timeout=10).json()


@pytest.mark.parametrize("case", CASES, ids="-".join)
def test_every_template_scores_the_reference_pairs(
    case, os_client, decoder_models, decoder_standins, reference, reference_index, made
):
    fmt, template, activation = case
    key, tolerance = ("raw", 1e-4) if activation == "none" else ("score", 1e-5)
    server = decoder_standins[fmt, "none" if (template, activation) == ("torchserve-pairs", "none") else "sigmoid"]
    settings = Settings(
        name=f"t-dec-{fmt}-{template}-{activation}",
        connector={"template": template},
        model={"path": str(decoder_models[fmt]), "activation": activation},
    )
    groups = reference[fmt]
    pipe = f"{settings.name}-pipeline"
    made.append(settings)  # removed at the end of the module, even if this case fails
    try:
        model_id = make_model(os_client, settings, url(server, template, settings.name))
        # _predict: one call per query, every pair arriving at the model exactly as written, in order
        requests.delete(f"{server.base_url}/_osrerank/received", timeout=10)
        got, want = [], []
        for query, rows in groups.items():
            got += predict(os_client, model_id, query, [r["document"] for r in rows])
            want += [r[key] for r in rows]
        sent = [[r["query"], r["document"]] for rows in groups.values() for r in rows]
        assert [pair for call in received(server) for pair in call["pairs"]] == sent
        np.testing.assert_allclose(got, want, atol=tolerance, rtol=0)

        # a plain _search through a rerank pipeline: each query over its own documents in the index
        ensure_pipeline(os_client, pipe, render_pipeline(settings.pipeline, model_id, ("text",), "decoder reference"))
        for query, rows in groups.items():
            ids = [reference_index[r["document"]] for r in rows]
            body = {
                "query": {"ids": {"values": ids}},
                "size": len(ids),
                "ext": {"rerank": {"query_context": {"query_text": query}}},
            }
            hits = os_client.call("POST", f"/{INDEX}/_search", body, params={"search_pipeline": pipe})["hits"]["hits"]
            expected = np.array([r[key] for r in rows])
            assert [h["_id"] for h in hits] == [ids[i] for i in np.argsort(-expected, kind="stable")], query
            np.testing.assert_allclose(
                [h["_score"] for h in hits], np.sort(expected)[::-1], atol=tolerance, rtol=0, err_msg=repr(query)
            )
    finally:
        delete_pipeline(os_client, pipe)
