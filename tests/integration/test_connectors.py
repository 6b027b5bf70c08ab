"""Every connector template on the real cluster against the stand-in: exact texts, exact scores, order."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from osrerank.cluster import LocalCluster
from osrerank.config import Settings
from osrerank.connector import Credentials, delete_connector, ensure_connector, find_connectors, render_connector
from osrerank.endpoint import local_credentials
from osrerank.errors import OpenSearchError
from osrerank.index import create_index, delete_index, load_documents
from osrerank.pipeline import delete_pipeline, ensure_pipeline, render_pipeline
from osrerank.register import ensure_model, ensure_model_group, predict
from osrerank.reranker import _delete_group, _groups

from ..conftest import ServerThread

pytestmark = pytest.mark.integration

#: Our own additions to the reference's nasty strings.
EXTRA_NASTY = [
    "all controls " + "".join(chr(c) for c in range(0x20)),
    "\\t is not a tab but \t is",
    "trailing backslash \\",
    'quote at end "',
    "${parameters.doc_count} and ${credential.secret_key}",
    "surrogate pair 𝄞 and ZWJ 👩‍👩‍👧",
    "<script>alert('x')</script> & ampersand = equals",
    "'single' and \u00a0nbsp and \ufeff bom",
    "42",
    "true",
    "null",
    "x" * 11000,
]
TEMPLATES = {
    "sagemaker-hf-text-classification": lambda base, name: f"{base}/endpoints/{name}/invocations",
    "torchserve-pairs": lambda base, name: f"{base}/predictions/{name}",
    "tei-rerank": lambda base, name: f"{base}/rerank",
}


def make_model(cluster, settings, url, credentials=None):
    if credentials is None:
        local = local_credentials()
        credentials = Credentials(local.access_key, local.secret_key, bearer_token=local.bearer_token)
    connector = ensure_connector(cluster, render_connector(settings, url, credentials))
    group = ensure_model_group(cluster, f"{settings.name}-group")
    return ensure_model(cluster, f"{settings.name}-model", connector.id, group.id).id


def cleanup(cluster, settings, model_id):
    """Delete the connector (and with it ``model_id``) and the model group."""
    for c in find_connectors(cluster, f"{settings.name}-connector"):
        assert model_id in delete_connector(cluster, c["id"])
    for group in _groups(cluster, f"{settings.name}-group"):
        _delete_group(cluster, group["id"])


@pytest.fixture(params=sorted(TEMPLATES))
def template_model(request, os_client, standin, test_model_dir):
    template = request.param
    settings = Settings(name=f"t-{template}", template=template, model=str(test_model_dir))
    model_id = make_model(os_client, settings, TEMPLATES[template](standin.cluster_base_url, settings.name))
    yield template, settings, model_id
    cleanup(os_client, settings, model_id)


def received(standin):
    return requests.get(f"{standin.base_url}/_osrerank/received", timeout=10).json()


def test_nasty_texts_arrive_byte_for_byte_and_score_exactly(template_model, os_client, standin, scorer, reference):
    _template, _settings, model_id = template_model
    query = reference[0]["query"]
    docs = [p["document"] for p in reference if p["query"] == query] + EXTRA_NASTY
    requests.delete(f"{standin.base_url}/_osrerank/received", timeout=10)
    scores = predict(os_client, model_id, query, docs)
    got = received(standin)[-1]["pairs"]
    assert [q for q, _ in got] == [query] * len(docs)
    assert [d for _, d in got] == docs  # exactly what the user wrote, in order
    np.testing.assert_allclose(scores, scorer.predict([(query, d) for d in docs]), atol=1e-5)
    ref = {p["document"]: p["sigmoid"] for p in reference if p["query"] == query}
    np.testing.assert_allclose(scores[: len(ref)], [ref[d] for d in docs[: len(ref)]], atol=1e-5)


def test_nasty_texts_as_query(template_model, os_client, standin, scorer, reference):
    _, _, model_id = template_model
    for pair in [p for p in reference if p["query"] != reference[0]["query"]] + [
        {"query": q, "document": reference[3]["document"], "sigmoid": None} for q in EXTRA_NASTY
    ]:
        requests.delete(f"{standin.base_url}/_osrerank/received", timeout=10)
        score = predict(os_client, model_id, pair["query"], [pair["document"]])[0]
        assert received(standin)[-1]["pairs"] == [[pair["query"], pair["document"]]]
        expected = (
            pair["sigmoid"] if pair["sigmoid"] is not None else scorer.predict([(pair["query"], pair["document"])])[0]
        )
        assert score == pytest.approx(expected, abs=1e-5)


def test_rerank_pipeline_orders_an_index_of_nasty_strings(template_model, os_client, scorer, reference):
    _, settings, model_id = template_model
    index = f"nasty-{settings.name}"
    query = reference[0]["query"]
    docs = [p["document"] for p in reference if p["query"] == query][:10] + EXTRA_NASTY[:6]
    create_index(os_client, index, ["text"], recreate=True)
    load_documents(os_client, index, [{"_id": str(i), "text": d} for i, d in enumerate(docs)])
    pipe = f"{settings.name}-pipeline"
    ensure_pipeline(
        os_client, pipe, render_pipeline(settings.model_copy(update={"document_fields": ("text",)}), model_id)
    )
    try:
        reply = os_client.call(
            "POST",
            f"/{index}/_search",
            {
                "query": {"match_all": {}},
                "size": len(docs),
                "ext": {"rerank": {"query_context": {"query_text": query}}},
            },
            params={"search_pipeline": pipe},
        )
        hits = reply["hits"]["hits"]
        expected = scorer.predict([(query, d) for d in docs])
        assert [h["_id"] for h in hits] == [str(i) for i in np.argsort(-expected, kind="stable")]
        np.testing.assert_allclose([h["_score"] for h in hits], np.sort(expected)[::-1], atol=1e-5)
    finally:
        delete_pipeline(os_client, pipe)
        delete_index(os_client, index)


def test_reply_with_wrong_number_of_scores_fails_loudly(os_client, test_model_dir):
    """A model endpoint that drops a score must not silently rerank with misaligned scores."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def one_score(request):
        return JSONResponse([0.5])

    app = Starlette(routes=[Route("/predictions/{m}", one_score, methods=["POST"])])
    settings = Settings(name="t-wrong-count", template="torchserve-pairs", model=str(test_model_dir))
    with ServerThread(app) as server:
        model_id = make_model(os_client, settings, f"{server.url}/predictions/x", Credentials())
        try:
            with pytest.raises(OpenSearchError) as err:
                predict(os_client, model_id, "q", ["a", "b", "c"])
            # ml-commons answers with a generic 500; the script's reason is in the node log
            assert err.value.status == 500
            logs = LocalCluster().run_dir / "logs"
            text = "".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
            assert "osrerank: the model returned 1 scores for 3 documents" in text
        finally:
            cleanup(os_client, settings, model_id)


@pytest.mark.parametrize("template", ["sagemaker-hf-text-classification", "tei-rerank"])
def test_raw_logit_passthrough(template, os_client, standin, test_model_dir, reference):
    """activation none: the connector asks the API for raw scores (function_to_apply / raw_scores),
    while the endpoint itself keeps its sigmoid default."""
    settings = Settings(name=f"t-raw-{template}", template=template, model=str(test_model_dir), activation="none")
    model_id = make_model(os_client, settings, TEMPLATES[template](standin.cluster_base_url, settings.name))
    try:
        query = reference[0]["query"]
        rows = [p for p in reference if p["query"] == query]
        scores = predict(os_client, model_id, query, [p["document"] for p in rows])
        np.testing.assert_allclose(scores, [p["logit"] for p in rows], atol=1e-4)
    finally:
        cleanup(os_client, settings, model_id)
