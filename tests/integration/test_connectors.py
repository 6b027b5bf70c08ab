"""Every connector template on the real cluster against the stand-in: exact texts, exact scores, order."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from osrerank.connector import delete_connector, ensure_connector, passes_inputs_through, render_connector
from osrerank.errors import OpenSearchError
from osrerank.ingest import create_index, delete_index, load_documents
from osrerank.ml_commons import MLCommons
from osrerank.pipeline import delete_pipeline, ensure_pipeline, render_pipeline
from osrerank.settings import Settings
from osrerank.targets.local_secrets import local_secrets
from osrerank.templates import connector_template, list_templates
from osrerank.types import Credentials

from ..conftest import ServerThread, start_standin
from .kit import one_node_only

pytestmark = [
    pytest.mark.integration,
    one_node_only(
        "connector templates, their payloads and their clean-up depend on no cluster shape"
        " (the ML node runs the same ml-commons code as a single node): the one-node lines run them on both lines"
    ),
]

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
#: Every connector template is tested; each needs an entry in ONE_SCORE_REPLIES below.
TEMPLATES = list_templates("connectors", "rerank")


def url(server, template: str, name: str) -> str:
    """Where a connector of ``template`` reaches ``server`` (a stand-in's info or a test server)."""
    if hasattr(server, "url_for"):
        return server.url_for(template, name)
    return server.url + connector_template(template).standin_path.format(name=name)


def connector_body(settings, endpoint_url, credentials, passthrough=False):
    """The connector rendered from ``settings`` (its template, activation, long documents) as setup renders it
    (``passthrough``: as it does for this cluster's line)."""
    return render_connector(
        settings.connector,
        settings.connector.template,
        endpoint_url,
        credentials,
        name=settings.connector_name,
        description=f"osrerank connector test: {settings.connector.template}",
        raw_scores=settings.model.activation == "none",
        chunk=settings.pipeline.chunk,
        passthrough=passthrough,
    )


def make_model(cluster, settings, endpoint_url, credentials=None):
    """A remote model on a connector rendered from ``settings.connector.template``, registered and deployed."""
    ml = MLCommons(cluster)
    credentials = credentials or local_secrets().credentials()
    body = connector_body(settings, endpoint_url, credentials, passes_inputs_through(ml))
    connector = ensure_connector(ml, body)
    group = ml.ensure_model_group(settings.group_name)
    model_id = ml.register_remote(settings.model_name, connector.id, group.id, "osrerank connector test")
    ml.deploy(model_id)
    return model_id


def predict(cluster, model_id, query, docs):
    return MLCommons(cluster).predict(model_id, query, docs)


def cleanup(cluster, settings, model_id):
    """Delete the connector (and with it ``model_id``) and the model group."""
    ml = MLCommons(cluster)
    for c in ml.find_connectors(settings.connector_name):
        assert model_id in delete_connector(ml, c["id"])
    for group in ml.find_model_groups(settings.group_name):
        ml.delete_model_group(group["id"])


@pytest.fixture(scope="session")
def raw_standin(test_model_dir):
    """A second stand-in that answers raw logits: the TorchServe API has no way to ask for them."""
    process, info = start_standin("osrerank-test-raw", test_model_dir, activation="none")
    yield info
    process.stop()


@pytest.fixture(scope="module")
def models(os_client, standin, raw_standin, test_model_dir):
    """Registers one model per (template, activation) the first time a test asks, for the whole module: the
    tests only read through them, and removing a remote model that has predicted costs ml-commons about 2 s
    (its undeploy closes the connector's HTTP client)."""
    made = {}

    def model(param):
        if param not in made:
            template, activation = param
            server = raw_standin if (template, activation) == ("torchserve-pairs", "none") else standin
            settings = Settings(
                name=f"t-{template}-{activation}",
                connector={"template": template},
                model={"path": str(test_model_dir), "activation": activation},
            )
            made[param] = (server, settings, make_model(os_client, settings, url(server, template, settings.name)))
        return made[param]

    yield model
    for _, settings, model_id in made.values():
        cleanup(os_client, settings, model_id)


@pytest.fixture(
    params=[
        (t, a) for a in ("sigmoid", "none") for t in TEMPLATES if a == "sigmoid" or connector_template(t).raw_scores
    ],
    ids="-".join,
)
def template_model(request, models):
    """A model registered on each template, scoring sigmoids or raw logits."""
    return models(request.param)


@pytest.fixture(params=[(t, "sigmoid") for t in TEMPLATES], ids="-".join)
def sigmoid_template_model(request, models):
    """The same, sigmoid only: where the activation cannot matter (how a query travels), once per template."""
    return models(request.param)


def received(server):
    return requests.get(f"{server.base_url}/_osrerank/received", timeout=10).json()


class Expected:
    """What each score must be. Pairs in the PyTorch reference are held to it, as logits within 1e-4 when
    the model returns logits (sigmoids near 1 would hide logit errors) or sigmoids within 1e-5. Our own
    extra strings have no PyTorch score: for them the kit's ONNX scorer is the reference, which proves
    transport (texts and order intact), not the model."""

    def __init__(self, reference, scorer, activation, template):
        self.key = "logit" if activation == "none" else "sigmoid"
        self.tolerance = 1e-4 if activation == "none" else 1e-5
        self.scorer, self.activation = scorer, activation
        # the SageMaker route scores an empty document as the HF pipeline does: the query alone
        self.alone = template == "sagemaker-hf-text-classification"
        self.pytorch = {
            (p["query"], p["document"]): p[self.key] for p in reference if not (self.alone and not p["document"])
        }

    def __call__(self, pairs):
        from osrerank.model import activate

        sent = [(q, None) if self.alone and not d else (q, d) for q, d in pairs]
        onnx = activate(self.scorer.score(sent).values, self.activation)
        return np.array([self.pytorch.get(pair, onnx[i]) for i, pair in enumerate(pairs)])

    def check(self, got, pairs):
        np.testing.assert_allclose(got, self(pairs), atol=self.tolerance, rtol=0)


def test_nasty_texts_arrive_byte_for_byte_and_score_exactly(template_model, os_client, scorer, reference):
    server, settings, model_id = template_model
    query = reference[0]["query"]
    docs = [p["document"] for p in reference if p["query"] == query] + EXTRA_NASTY
    requests.delete(f"{server.base_url}/_osrerank/received", timeout=10)
    scores = predict(os_client, model_id, query, docs)
    got = received(server)[-1]["pairs"]
    assert [q for q, _ in got] == [query] * len(docs)
    assert [d for _, d in got] == docs  # exactly what the user wrote, in order
    Expected(reference, scorer, settings.model.activation, settings.connector.template).check(
        scores, [(query, d) for d in docs]
    )


def test_nasty_texts_as_query(sigmoid_template_model, os_client, scorer, reference):
    server, settings, model_id = sigmoid_template_model
    pairs = [(p["query"], p["document"]) for p in reference if p["query"] != reference[0]["query"]]
    pairs += [(q, reference[3]["document"]) for q in EXTRA_NASTY]
    got = []
    for query, document in pairs:
        requests.delete(f"{server.base_url}/_osrerank/received", timeout=10)
        got += predict(os_client, model_id, query, [document])
        assert received(server)[-1]["pairs"] == [[query, document]]
    Expected(reference, scorer, settings.model.activation, settings.connector.template).check(got, pairs)


def test_rerank_pipeline_orders_an_index_of_nasty_strings(template_model, os_client, scorer, reference):
    _, settings, model_id = template_model
    index = f"nasty-{settings.name}"
    query = reference[0]["query"]
    docs = [p["document"] for p in reference if p["query"] == query][:10] + EXTRA_NASTY[:6]
    create_index(os_client, index, ["text"], recreate=True)
    load_documents(os_client, index, [{"_id": str(i), "text": d} for i, d in enumerate(docs)])
    pipe = f"{settings.name}-pipeline"
    ensure_pipeline(os_client, pipe, render_pipeline(settings.pipeline, model_id, ("text",), "nasty strings"))
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
        expected = Expected(reference, scorer, settings.model.activation, settings.connector.template)
        want = expected([(query, d) for d in docs])
        assert [h["_id"] for h in hits] == [str(i) for i in np.argsort(-want, kind="stable")]
        np.testing.assert_allclose([h["_score"] for h in hits], np.sort(want)[::-1], atol=expected.tolerance, rtol=0)
    finally:
        delete_pipeline(os_client, pipe)
        delete_index(os_client, index)


def test_one_model_call_per_hit_carries_nasty_texts_exactly(sigmoid_template_model, os_client, scorer, reference):
    """The --max-batch pipeline (ml_inference one_to_one, then rerank by_field) hands each hit's _source and the
    request's query to the connector as raw objects, which its pre-process escapes itself: every nasty text,
    as document (two fields joined, one missing in some documents, one dotted) and as query, reaches the
    model exactly, one document per request, and the hits come back in the model's order with its scores."""
    server, settings, model_id = sigmoid_template_model
    index = f"per-hit-{settings.name}"
    query = 'What "is" ${parameters.osrerank_doc} \\ {"q": 1} \t' + EXTRA_NASTY[0]
    bodies = [p["document"] for p in reference if p["query"] == reference[0]["query"]][:6] + EXTRA_NASTY
    docs = [{"_id": str(i), "doc": {"body": b}} | ({"title": f"T{i} "} if i % 2 else {}) for i, b in enumerate(bodies)]
    texts = [d.get("title", "") + d["doc"]["body"] for d in docs]
    create_index(os_client, index, ["title", "doc.body"], recreate=True)
    load_documents(os_client, index, docs)
    pipe = f"{settings.name}-per-hit"
    per_hit = settings.updated(pipeline={"max_batch": 1}).pipeline
    ensure_pipeline(os_client, pipe, render_pipeline(per_hit, model_id, ("title", "doc.body"), "nasty, per hit"))
    try:
        requests.delete(f"{server.base_url}/_osrerank/received", timeout=10)
        body = {"query": {"match_all": {}}, "size": len(docs)}
        body["ext"] = {"rerank": {"query_context": {"query_text": query}}}
        reply = os_client.call("POST", f"/{index}/_search", body, params={"search_pipeline": pipe})
        calls = received(server)
        assert all(len(c["pairs"]) == 1 for c in calls) and len(calls) == len(docs)
        assert sorted(tuple(c["pairs"][0]) for c in calls) == sorted((query, t) for t in texts)
        expected = Expected(reference, scorer, settings.model.activation, settings.connector.template)
        want = expected([(query, t) for t in texts])
        hits = reply["hits"]["hits"]
        assert [h["_id"] for h in hits] == [str(i) for i in np.argsort(-want, kind="stable")]
        np.testing.assert_allclose([h["_score"] for h in hits], np.sort(want)[::-1], atol=1e-5, rtol=0)
    finally:
        delete_pipeline(os_client, pipe)
        delete_index(os_client, index)


ONE_SCORE_REPLIES = {
    "bedrock-rerank": {"results": [{"index": 0, "relevanceScore": 0.5}]},
    "cohere-rerank": {"id": "x", "results": [{"index": 0, "relevance_score": 0.5}], "meta": {}},
    "sagemaker-hf-text-classification": [{"label": "LABEL_0", "score": 0.5}],
    "torchserve-pairs": [0.5],
    "tei-rerank": [{"index": 0, "score": 0.5}],
}


@pytest.mark.parametrize("template", TEMPLATES)
def test_reply_with_wrong_number_of_scores_fails_loudly(template, os_client, test_model_dir, node_log):
    """A model endpoint that drops a score must not silently rerank with misaligned scores."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def one_score(request):
        return JSONResponse(ONE_SCORE_REPLIES[template])

    app = Starlette(routes=[Route("/{path:path}", one_score, methods=["POST"])])
    settings = Settings(name=f"t-wrong-count-{template}", connector={"template": template}, model=str(test_model_dir))
    with ServerThread(app) as server:
        credentials = Credentials(access_key="AK", secret_key="SK")  # this server checks nothing
        model_id = make_model(os_client, settings, url(server, template, settings.name), credentials)
        try:
            with pytest.raises(OpenSearchError) as err:
                predict(os_client, model_id, "q", ["a", "b", "c"])
            # ml-commons answers with a generic 500; the script's reason is in the node log
            assert err.value.status == 500
            assert "osrerank: the model returned 1 scores for 3 documents" in node_log()
        finally:
            cleanup(os_client, settings, model_id)


# ------------------------------------------------------------------ what the rerank processor reads
def search_scores(os_client, index, pipeline, query, **extra):
    body = {"query": {"match_all": {}}, "size": 10, "ext": {"rerank": {"query_context": {"query_text": query}}}}
    reply = os_client.call("POST", f"/{index}/_search", {**body, **extra}, params={"search_pipeline": pipeline})
    return {h["_id"]: h["_score"] for h in reply["hits"]["hits"]}


@pytest.fixture
def rerank_index(os_client, standin, test_model_dir):
    """An index with the reference documents under a dotted path and at the top level, and a model."""
    settings = Settings(
        name="t-fields", model=str(test_model_dir), connector={"template": "sagemaker-hf-text-classification"}
    )
    model_id = make_model(os_client, settings, url(standin, settings.connector.template, "t"))
    index = "t-fields-docs"
    create_index(os_client, index, ["text", "doc.body"], recreate=True)
    yield settings, model_id, index
    delete_index(os_client, index)
    for pipe in ("t-fields-top", "t-fields-dotted"):
        delete_pipeline(os_client, pipe)
    cleanup(os_client, settings, model_id)


EMPTY_TEXT = "every hit reached the reranker with empty text"


def test_dotted_document_fields_from_3_6_and_asked_for_in_fields_before(rerank_index, os_client, reference):
    """neural-search resolves dotted document_fields from _source only from 3.6; on 2.19 every hit would reach the
    model as empty text, which the connector refuses with a 400 naming the fix; "fields" works on both lines."""
    settings, model_id, index = rerank_index
    query = reference[0]["query"]
    rows = [p for p in reference if p["query"] == query][:4]
    load_documents(os_client, index, [{"_id": str(i), "doc": {"body": p["document"]}} for i, p in enumerate(rows)])
    pipe = "t-fields-dotted"
    ensure_pipeline(os_client, pipe, render_pipeline(settings.pipeline, model_id, ("doc.body",), "dotted field"))
    expected = {str(i): p["sigmoid"] for i, p in enumerate(rows)}
    assert len(set(expected.values())) == len(expected), "the test needs documents with distinct scores"
    if os_client.version >= (3, 6, 0):
        assert search_scores(os_client, index, pipe, query) == pytest.approx(expected, abs=1e-5)
    else:
        with pytest.raises(OpenSearchError, match=EMPTY_TEXT) as refused:
            search_scores(os_client, index, pipe, query)
        assert refused.value.status == 400
    asked = search_scores(os_client, index, pipe, query, fields=["doc.body"])
    assert asked == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "source", [False, ["title"], {"includes": ["title"]}, {"excludes": ["text"]}], ids=["false", "list", "in", "ex"]
)
def test_a_source_filter_without_the_rerank_field_is_refused(rerank_index, os_client, reference, source):
    """A _source filter that leaves the reranked field out would rerank every hit on empty text (the rerank
    processor reads document_fields from the hit's fields, then its _source): the connector refuses it with a
    400 naming the fix, and the same request asking for the field in "fields" reranks by the real text."""
    settings, model_id, index = rerank_index
    query = reference[0]["query"]
    rows = [p for p in reference if p["query"] == query][:4]
    docs = [{"_id": str(i), "title": f"title {i}", "text": p["document"]} for i, p in enumerate(rows)]
    load_documents(os_client, index, docs)
    pipe = "t-fields-top"
    ensure_pipeline(os_client, pipe, render_pipeline(settings.pipeline, model_id, ("text",), "top-level field"))
    expected = {str(i): p["sigmoid"] for i, p in enumerate(rows)}
    assert len(set(expected.values())) == len(expected), "the test needs documents with distinct scores"
    assert search_scores(os_client, index, pipe, query) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(OpenSearchError, match=EMPTY_TEXT) as refused:
        search_scores(os_client, index, pipe, query, _source=source)
    assert refused.value.status == 400
    reply = os_client.call(
        "POST",
        f"/{index}/_search",
        {"query": {"match_all": {}}, "size": 10, "_source": source, "fields": ["text"],
         "ext": {"rerank": {"query_context": {"query_text": query}}}},
        params={"search_pipeline": pipe},
    )  # fmt: skip
    hits = reply["hits"]["hits"]
    assert {h["_id"]: h["_score"] for h in hits} == pytest.approx(expected, abs=1e-5)
    assert all(h["fields"]["text"] == [rows[int(h["_id"])]["document"]] for h in hits)  # what the response holds


# ------------------------------------------------------------------ long documents in passages
def passages(text: str, words: int, stride: int, limit: int) -> list[str]:
    """What the connector's pre-process sends for one document (written again here, in Python)."""
    split, out, start = text.split(" "), [], 0
    while True:
        end = min(start + words, len(split))
        out.append(" ".join(split[start:end]))
        if end >= len(split) or len(out) >= limit:
            return out
        start += stride


@pytest.mark.parametrize("template", TEMPLATES)
def test_chunked_documents_score_their_best_passage(template, os_client, standin, scorer, reference):
    """Every passage through the cluster is exactly the Python split of the document, and each document's
    score is its best passage's score from a direct call, to 1e-5 (kit scorer: transport, the split); the
    per-hit pipeline (--max-batch) gives each document the same score."""
    words, stride, limit = 12, 5, 3
    settings = Settings(
        name=f"t-chunk-{template}",
        connector={"template": template},
        pipeline={"long_documents": f"chunk:{words}:{stride}:{limit}"},
    )
    model_id = make_model(os_client, settings, url(standin, template, settings.name))
    index, pipe = f"t-chunk-{template}-docs", f"t-chunk-{template}-per-hit"
    query = reference[0]["query"]
    docs = [
        "short one",
        "",
        " ".join(f"w{i}" for i in range(40)),  # needs more than 3 passages: only the first 3 are read
        'double  spaces   and a quote " and a backslash \\ in a twenty  word  long  document with trailing space ',
        reference[3]["document"],
    ]
    try:
        requests.delete(f"{standin.base_url}/_osrerank/received", timeout=10)
        scores = predict(os_client, model_id, query, docs)
        split = [passages(d, words, stride, limit) for d in docs]
        per = max(len(p) for p in split)
        slots = [p[min(j, len(p) - 1)] for p in split for j in range(per)]
        sent = received(standin)[-1]["pairs"]
        assert [d for _, d in sent] == slots and {q for q, _ in sent} == {query}
        alone = template == "sagemaker-hf-text-classification"  # an empty passage: the query alone, as the HF pipeline
        best = [max(scorer.predict([(query, None if alone and not p else p) for p in ps])) for ps in split]
        np.testing.assert_allclose(scores, best, atol=1e-5, rtol=0)
        # the same through the per-hit pipeline (--max-batch): each document's passages in its own call
        create_index(os_client, index, ["text"], recreate=True)
        load_documents(os_client, index, [{"_id": str(i), "text": d} for i, d in enumerate(docs)])
        per_hit = settings.updated(pipeline={"max_batch": limit}).pipeline
        ensure_pipeline(os_client, pipe, render_pipeline(per_hit, model_id, ("text",), "chunked, per hit"))
        got = search_scores(os_client, index, pipe, query)
        assert got == pytest.approx({str(i): b for i, b in enumerate(best)}, abs=1e-5)
    finally:
        delete_pipeline(os_client, pipe)
        delete_index(os_client, index)
        cleanup(os_client, settings, model_id)


def test_the_stand_in_keeps_an_idle_connection_longer_than_ml_commons_pool_does(standin):
    """ml-commons' HTTP client (AWS SDK Netty) keeps an idle connection pooled for 60 s and sends the next call on it:
    a server that closes it sooner (uvicorn's default 5 s) can close it under that call, which then fails. Costs 6 s
    a line."""
    url = urlsplit(standin.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    for pause in (0, 6):
        time.sleep(pause)
        connection.request("GET", "/ping")
        reply = connection.getresponse()  # http.client.RemoteDisconnected if the server closed the connection
        reply.read()
        assert reply.status == 200 and not reply.will_close
    connection.close()


@pytest.mark.filterwarnings("ignore:this request accesses system indices")
def test_a_connector_ml_commons_misjudges_in_use_is_still_deleted(os_client, standin):
    """ml-commons looks for a connector's models with a ``match`` query on a text field, so a model on
    another connector whose id shares a dash-separated part (``Zz-<id>``: as ``dz-iUKI…`` and ``dz-…`` in the
    CI run it cost) blocks the delete for ever. Here that model is a document written to the model index as
    ml-commons writes one: the connector goes, with its own model, and the other model stays."""
    settings = Settings(name="t-misjudged", connector={"template": "sagemaker-hf-text-classification"})
    ml = MLCommons(os_client)
    model_id = make_model(os_client, settings, url(standin, "sagemaker-hf-text-classification", settings.name))
    (connector,) = ml.find_connectors(settings.connector_name)
    decoy = {"name": "t-misjudged-other", "algorithm": "REMOTE", "model_state": "REGISTERED"}
    path = "/.plugins-ml-model/_doc/t-misjudged-other"
    os_client.call("PUT", path, {**decoy, "connector_id": f"Zz-{connector['id']}"}, params={"refresh": "true"})
    try:
        with pytest.raises(OpenSearchError, match=r"still using this connector.*t-misjudged-other"):
            ml.delete_connector(connector["id"])  # what ml-commons says, unaided
        assert delete_connector(ml, connector["id"]) == [model_id]
        assert not os_client.exists(f"/_plugins/_ml/connectors/{connector['id']}")
        assert not os_client.exists(f"/_plugins/_ml/models/{model_id}")
        assert os_client.exists(path)
    finally:
        os_client.call("DELETE", path, params={"refresh": "true"})
        cleanup(os_client, settings, model_id)
