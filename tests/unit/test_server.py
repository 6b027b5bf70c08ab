"""The stand-in over real HTTP (uvicorn in a thread): exactness, batching, APIs, errors, SigV4."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from osrerank.server.app import create_app
from osrerank.server.auth import Auth
from osrerank.server.sigv4 import SigV4Verifier

from ..conftest import ServerThread, hf_pipeline_expected

KEY, SECRET, REGION, TOKEN = "AKIATESTKEY", "test-secret-key", "us-west-2", "test-bearer-token"


@pytest.fixture(scope="module")
def open_server(scorer):
    with ServerThread(create_app(scorer, max_wait_s=0.01)) as server:
        yield server


@pytest.fixture(scope="module")
def signed_server(scorer):
    auth = Auth(sigv4=SigV4Verifier(KEY, SECRET, REGION), bearer_token=TOKEN)
    with ServerThread(create_app(scorer, auth=auth)) as server:
        yield server


def body_for(pairs, truncation=True):
    body = {"inputs": [{"text": q, "text_pair": d} for q, d in pairs]}
    if truncation:
        body["parameters"] = {"truncation": True}
    return body


def invoke(server, pairs, **kwargs):
    return requests.post(f"{server.url}/invocations", json=body_for(pairs, **kwargs), timeout=60)


def test_every_reference_pair_in_one_request(open_server, reference, scorer):
    reply = invoke(open_server, [(p["query"], p["document"]) for p in reference])
    assert reply.status_code == 200, reply.text
    assert [r["label"] for r in reply.json()] == ["LABEL_0"] * len(reference)
    expected = hf_pipeline_expected(reference, scorer)
    np.testing.assert_allclose([r["score"] for r in reply.json()], expected, atol=1e-5)


def test_reference_pairs_over_many_concurrent_requests_keep_their_order(open_server, reference, scorer):
    chunks = [reference[i : i + 3] for i in range(0, len(reference), 3)] * 2  # 18 requests, 16 at a time
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda c: invoke(open_server, [(p["query"], p["document"]) for p in c]), chunks))
    for chunk, reply in zip(chunks, replies, strict=True):
        assert reply.status_code == 200
        np.testing.assert_allclose([r["score"] for r in reply.json()], hf_pipeline_expected(chunk, scorer), atol=1e-5)


def metric(server, name: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_concurrent_requests_are_answered_from_one_batch(scorer, reference):
    """Two requests that arrive within the batching wait are scored as one model batch."""
    import threading

    with ServerThread(create_app(scorer, max_wait_s=2.0)) as server:
        invoke(server, [(reference[0]["query"], reference[0]["document"])])  # warm up
        batches, requests_before = (
            metric(server, "osrerank_batches_total"),
            metric(server, "osrerank_scoring_requests_total"),
        )
        barrier = threading.Barrier(2)
        chunks = [reference[0:3], reference[3:6]]

        def send(chunk):
            barrier.wait()
            return invoke(server, [(p["query"], p["document"]) for p in chunk])

        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(send, chunks))
        for chunk, reply in zip(chunks, replies, strict=True):
            np.testing.assert_allclose([r["score"] for r in reply.json()], [p["sigmoid"] for p in chunk], atol=1e-5)
        assert metric(server, "osrerank_scoring_requests_total") == requests_before + 2
        assert metric(server, "osrerank_batches_total") == batches + 1
        assert metric(server, "osrerank_batch_pairs_max") == 6


def test_a_request_is_run_shortest_first_and_answered_in_its_own_order():
    """The model sees a request's pairs in slices of about one length (little padding, full batches); the
    scores still come back in the order the pairs were sent."""
    import asyncio
    from types import SimpleNamespace

    from osrerank.kinds.base import Encoded
    from osrerank.server.batcher import DynamicBatcher

    lengths = [50, 5, 30, 10, 40, 20]
    seen: list[list[int]] = []

    def run(items):
        seen.append([len(item.ids) for item in items])
        return np.array([float(len(item.ids)) for item in items])

    async def score():
        batcher = DynamicBatcher(SimpleNamespace(run=run), max_batch_tokens=64, max_wait_s=0)
        batcher.start()
        try:
            items = [SimpleNamespace(ids=[0] * n) for n in lengths]
            encoded = Encoded(items, np.zeros(len(items), dtype=bool), np.array(lengths))
            return await batcher.score(encoded)
        finally:
            await batcher.close()

    assert asyncio.run(score()).tolist() == [float(n) for n in lengths]
    assert [n for batch in seen for n in batch] == sorted(lengths)


def test_raw_logits_with_function_to_apply_none(scorer, reference):
    with ServerThread(create_app(scorer, activation="none")) as server:
        reply = invoke(server, [(p["query"], p["document"]) for p in reference])
    expected = hf_pipeline_expected(reference, scorer, "logit")
    np.testing.assert_allclose([r["score"] for r in reply.json()], expected, atol=1e-4)


def test_function_to_apply_none_per_request_overrides_the_server_default(open_server, reference, scorer):
    body = body_for([(p["query"], p["document"]) for p in reference])
    body["parameters"]["function_to_apply"] = "none"
    reply = requests.post(f"{open_server.url}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    expected = hf_pipeline_expected(reference, scorer, "logit")
    np.testing.assert_allclose([r["score"] for r in reply.json()], expected, atol=1e-4)


def test_torchserve_and_tei_routes_agree_with_sagemaker(open_server, reference):
    pairs = [(p["query"], p["document"]) for p in reference[:7]]
    ts = requests.post(f"{open_server.url}/predictions/model", json=body_for(pairs), timeout=60).json()
    np.testing.assert_allclose(ts, [p["sigmoid"] for p in reference[:7]], atol=1e-5)
    query, docs = reference[0]["query"], [p["document"] for p in reference[:5]]
    tei = requests.post(
        f"{open_server.url}/rerank", json={"query": query, "texts": docs, "truncate": True}, timeout=60
    ).json()
    expected = sorted(range(5), key=lambda i: -reference[i]["sigmoid"])
    assert [r["index"] for r in tei] == expected
    np.testing.assert_allclose([r["score"] for r in tei], [reference[i]["sigmoid"] for i in expected], atol=1e-5)
    raw = requests.post(
        f"{open_server.url}/rerank",
        json={"query": query, "texts": docs, "raw_scores": True, "return_text": True},
        timeout=60,
    ).json()
    assert raw[0]["text"] == docs[raw[0]["index"]]
    assert raw[0]["score"] == pytest.approx(reference[raw[0]["index"]]["logit"], abs=1e-4)


def test_overlong_pair_without_truncation_is_400_like_the_hf_container(open_server, reference, scorer):
    long_pair = next((p["query"], p["document"]) for p in reference if p["tokens"] >= scorer.max_length)
    reply = invoke(open_server, [long_pair], truncation=False)
    assert reply.status_code == 400
    assert "truncation" in reply.json()["error"]
    assert invoke(open_server, [long_pair], truncation=True).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"",
        b'{"inputs": "text"}',
        b'[{"text": "q", "text_pair": "d"}]',
        b'{"inputs": [{"text": "q", "text_pair": "d"}], "parameters": {"foo": 1}}',
        b'{"inputs": [{"text": 1, "text_pair": "d"}]}',
        b"[1, 2]",
        b'{"inputs": [{"text": "q", "text_pair": "d"}], "parameters": 3}',
        b'{"inputs": [{"text": "q", "text_pair": "d"}], "parameters": {"function_to_apply": "max"}}',
    ],
)
def test_malformed_bodies_get_400_with_a_message(open_server, payload):
    reply = requests.post(f"{open_server.url}/invocations", data=payload, timeout=30)
    assert reply.status_code == 400
    assert set(reply.json()) == {"error", "error_type"}


def test_tei_rejects_empty_texts(open_server):
    reply = requests.post(f"{open_server.url}/rerank", json={"query": "q", "texts": []}, timeout=30)
    assert reply.status_code == 400 and reply.json()["error_type"] == "empty"


def test_oversized_body_is_413(open_server):
    reply = requests.post(f"{open_server.url}/invocations", data=b"x" * (17 * 1024 * 1024), timeout=60)
    assert reply.status_code == 413


# ------------------------------------------------------------------ SigV4
def signed(
    server,
    body: bytes,
    *,
    key=KEY,
    secret=SECRET,
    region=REGION,
    service="sagemaker",
    when: datetime | None = None,
    tamper: bytes | None = None,
    token: str | None = None,
    path: str = "/endpoints/my-endpoint/invocations",
    headers: dict[str, str] | None = None,
):
    url = f"{server.url}{path}"
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    if when is not None:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        signer._modify_request_before_signing(request)
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        signer._inject_signature_to_request(request, signature)
    else:
        signer.add_auth(request)
    return requests.post(url, data=tamper if tamper is not None else body, headers=dict(request.headers), timeout=30)


BODY = json.dumps(body_for([("What is the capital of the United States?", "Washington, D.C.")])).encode()


def test_signed_request_is_accepted(signed_server):
    reply = signed(signed_server, BODY)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()) == 1


def test_signed_request_with_session_token_is_accepted(signed_server):
    assert signed(signed_server, BODY, token="session-token").status_code == 200


def test_unsigned_request_is_rejected(signed_server):
    reply = requests.post(f"{signed_server.url}/endpoints/x/invocations", data=BODY, timeout=30)
    assert reply.status_code == 403 and reply.json()["error_type"] == "authentication"


def test_wrong_secret_is_rejected(signed_server):
    assert signed(signed_server, BODY, secret="not-the-secret").status_code == 403


def test_tampered_body_is_rejected(signed_server):
    reply = signed(signed_server, BODY, tamper=BODY.replace(b"Washington", b"Carson City"))
    assert reply.status_code == 403
    assert "altered" in reply.json()["error"] or "does not match" in reply.json()["error"]


def test_stale_signature_is_rejected(signed_server):
    reply = signed(signed_server, BODY, when=datetime.now(UTC) - timedelta(minutes=16))
    assert reply.status_code == 403 and "expired" in reply.json()["error"]


def test_fresh_backdated_signature_is_accepted(signed_server):
    assert signed(signed_server, BODY, when=datetime.now(UTC) - timedelta(minutes=5)).status_code == 200


def test_container_path_is_protected_too(signed_server):
    assert requests.post(f"{signed_server.url}/invocations", data=BODY, timeout=30).status_code == 403


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"key": "AKIAOTHERKEY"}, "access key id is not known"),
        ({"region": "us-east-1"}, "does not match this endpoint's us-west-2/sagemaker"),
        ({"service": "es"}, "does not match this endpoint's us-west-2/sagemaker"),
        ({"ahead": timedelta(minutes=30)}, "expired"),
    ],
    ids=["wrong-key-id", "wrong-region", "wrong-service", "future-dated"],
)
def test_signature_for_another_key_scope_or_time_is_rejected(signed_server, change, reason):
    if "ahead" in change:  # dated from now, not from when the module was collected
        change = {"when": datetime.now(UTC) + change["ahead"]}
    reply = signed(signed_server, BODY, **change)
    assert reply.status_code == 403 and reason in reply.json()["error"]


def test_unsigned_payload_is_refused(signed_server):
    """UNSIGNED-PAYLOAD leaves the body out of the signature: a captured request could carry any body."""
    reply = signed(signed_server, BODY, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert reply.status_code == 403 and "UNSIGNED-PAYLOAD" in reply.json()["error"]


SCORING_ROUTES = {
    "/endpoints/e/invocations": BODY,
    "/invocations": BODY,
    "/predictions/m": BODY,
    "/rerank": json.dumps({"query": "q", "texts": ["a", "b"]}).encode(),
}


@pytest.mark.parametrize("path", sorted(SCORING_ROUTES))
def test_every_scoring_route_needs_a_signature_or_the_token(signed_server, path):
    url, body = f"{signed_server.url}{path}", SCORING_ROUTES[path]
    assert requests.post(url, data=body, timeout=30).status_code == 403
    wrong = requests.post(url, data=body, headers={"Authorization": "Bearer not-the-token"}, timeout=30)
    assert wrong.status_code == 403 and "bearer token" in wrong.json()["error"]
    right = requests.post(url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert right.status_code == 200, right.text
    assert signed(signed_server, body, path=path).status_code == 200


def test_rejections_are_counted_on_metrics(signed_server):
    def rejected() -> int:
        text = requests.get(f"{signed_server.url}/metrics", timeout=10).text
        line = next(
            (x for x in text.splitlines() if x.startswith('osrerank_rejected_total{reason="authentication"}')), ""
        )
        return int(line.split()[-1]) if line else 0

    before = rejected()
    for _ in range(3):
        requests.post(f"{signed_server.url}/rerank", json={"query": "q", "texts": ["a"]}, timeout=30)
    assert rejected() == before + 3


def test_ping_health_and_metrics_stay_public(signed_server):
    for path in ("/ping", "/health", "/metrics"):
        assert requests.get(f"{signed_server.url}{path}", timeout=5).status_code == 200


def test_verifier_repr_hides_the_secret():
    assert SECRET not in repr(SigV4Verifier(KEY, SECRET, REGION))


def test_sagemaker_route_answers_like_the_hf_toolkit(open_server, scorer):
    """The toolkit's answers for bodies it treats specially (the full contract: tests/contract)."""
    pair = {"text": "What is the capital?", "text_pair": "Washington, D.C."}
    single = requests.post(f"{open_server.url}/invocations", json={"inputs": pair}, timeout=30).json()
    bare = requests.post(f"{open_server.url}/invocations", json=pair, timeout=30).json()
    assert isinstance(single, dict) and single == bare and single["label"] == "LABEL_0"
    assert requests.post(f"{open_server.url}/invocations", json={"inputs": []}, timeout=30).json() == []
    alone = requests.post(f"{open_server.url}/invocations", json={"inputs": [{"text": "q"}]}, timeout=30).json()
    empty = requests.post(
        f"{open_server.url}/invocations", json={"inputs": [{"text": "q", "text_pair": ""}]}, timeout=30
    )
    assert alone == empty.json() and alone[0]["score"] == pytest.approx(scorer.predict([("q", None)])[0], abs=1e-6)
    body = {"inputs": [pair, pair], "parameters": {"function_to_apply": "softmax"}}
    assert [r["score"] for r in requests.post(f"{open_server.url}/invocations", json=body, timeout=30).json()] == [
        1.0,
        1.0,
    ]


# ------------------------------------------------------------------ the server spec (serve, the standin target)
def test_ping_shows_the_precision_decision(open_server):
    precision = requests.get(f"{open_server.url}/ping", timeout=10).json()["precision"]
    assert precision == {"mode": "fp32", "why": "asked for", "pairs_per_s": None, "figures": {}}


def test_build_app_serves_the_spec_and_logs_its_precision(tiny_model_dir, reference, caplog):
    import logging

    from osrerank.scorer import ModelOptions
    from osrerank.server.options import ServerOptions
    from osrerank.server.run import ServerSpec, build_app

    caplog.set_level(logging.INFO, logger="osrerank.server")
    spec = ServerSpec(model=ModelOptions(path=str(tiny_model_dir), activation="none"), server=ServerOptions(auth=False))
    with ServerThread(build_app(spec)) as server:
        reply = invoke(server, [(reference[0]["query"], reference[0]["document"])])
        assert reply.json()[0]["score"] == pytest.approx(reference[0]["logit"], abs=1e-4)  # activation none
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "osrerank.server"]
    assert [line for line in logged if "precision" in line] == [
        {"precision": "fp32", "why": "asked for", "figures": {}}
    ]


def test_a_spec_with_auth_needs_a_key_or_token(tiny_model_dir, monkeypatch):
    from osrerank.errors import ConfigError
    from osrerank.scorer import ModelOptions
    from osrerank.server.run import ServerSpec, build_app

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OSRERANK_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="the stand-in authenticates every scoring request"):
        build_app(ServerSpec(model=ModelOptions(path=str(tiny_model_dir))))


def test_the_background_server_refuses_its_spec_in_one_line(tmp_path):
    """`python -m osrerank.server SPEC_JSON` (how the standin target starts it): a spec it cannot serve ends the
    process with one line the target shows (REFUSED + the message), no traceback."""
    import subprocess
    import sys

    from osrerank.scorer import ModelOptions
    from osrerank.server.options import ServerOptions
    from osrerank.server.run import REFUSED, ServerSpec

    spec = ServerSpec(model=ModelOptions(path=str(tmp_path)), server=ServerOptions(auth=False, port=0))
    proc = subprocess.run(
        [sys.executable, "-m", "osrerank.server", spec.model_dump_json()], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith(REFUSED)]
    assert f"{tmp_path} has no onnx/model.onnx" in line


# ------------------------------------------------------------------ the real APIs' paths: Bedrock, Cohere, 404
QUERY = "What is the capital of the United States?"


def sigmoids(scorer, pairs) -> np.ndarray:
    """The expected relevance scores, from the kit's scorer's logits (not through the server's activation)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(scorer.score(pairs).values, dtype=np.float64)))


def documents(reference) -> list[str]:
    return [p["document"] for p in reference if p["query"] == QUERY]


def agent_runtime_body(query: str, docs: list[str], **configuration) -> bytes:
    """A Bedrock Agent Runtime Rerank body as ml-commons' connector.pre_process.bedrock.rerank builds it."""
    model = {"modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/amazon.rerank-v1:0"}
    return json.dumps(
        {
            "queries": [{"textQuery": {"text": query}, "type": "TEXT"}],
            "rerankingConfiguration": {
                "bedrockRerankingConfiguration": {"modelConfiguration": model, **configuration},
                "type": "BEDROCK_RERANKING_MODEL",
            },
            "sources": [
                {"inlineDocumentSource": {"textDocument": {"text": d}, "type": "TEXT"}, "type": "INLINE"} for d in docs
            ],
        }
    ).encode()


def check_ranked(results, expected, key: str, top: int | None = None) -> None:
    """``results`` name every index once, best first, each with its sigmoid to 1e-6 (the top ``top`` of them)."""
    order = sorted(range(len(expected)), key=lambda i: -expected[i])[:top]
    assert [r["index"] for r in results] == order
    np.testing.assert_allclose([r[key] for r in results], expected[order], atol=1e-6, rtol=0)


# boto3 sends the model id's ':' percent-encoded; ml-commons sends it as it is: both are signed and accepted
@pytest.mark.parametrize("model_id", ["amazon.rerank-v1:0", "amazon.rerank-v1%3A0", "cohere.rerank-v3-5:0"])
def test_invoke_model_signed_for_bedrock_answers_sigmoids_best_first(signed_server, scorer, reference, model_id):
    docs = documents(reference)
    expected = sigmoids(scorer, [(QUERY, d) for d in docs])
    path = f"/model/{model_id}/invoke"
    body = {"query": QUERY, "documents": docs, **({"api_version": 2} if "cohere" in model_id else {})}
    reply = signed(signed_server, json.dumps(body).encode(), service="bedrock", path=path)
    assert reply.status_code == 200, reply.text
    check_ranked(reply.json()["results"], expected, "relevance_score")
    top = signed(signed_server, json.dumps({**body, "top_n": 3}).encode(), service="bedrock", path=path)
    assert top.status_code == 200, top.text
    check_ranked(top.json()["results"], expected, "relevance_score", top=3)


def test_invoke_model_signed_for_sagemaker_is_refused(signed_server):
    body = json.dumps({"query": QUERY, "documents": ["Washington, D.C."]}).encode()
    reply = signed(signed_server, body, service="sagemaker", path="/model/amazon.rerank-v1:0/invoke")
    assert reply.status_code == 403 and reply.json()["error_type"] == "authentication"
    assert "us-west-2/bedrock" in reply.json()["error"]  # the refusal names the service the path is signed for


def test_agent_runtime_rerank_signed_for_bedrock_and_tei_rerank_with_the_token_share_the_path(
    signed_server, scorer, reference
):
    docs = documents(reference)
    expected = sigmoids(scorer, [(QUERY, d) for d in docs])
    reply = signed(signed_server, agent_runtime_body(QUERY, docs), service="bedrock", path="/rerank")
    assert reply.status_code == 200, reply.text
    check_ranked(reply.json()["results"], expected, "relevanceScore")
    wanted = signed(
        signed_server, agent_runtime_body(QUERY, docs, numberOfResults=2), service="bedrock", path="/rerank"
    )
    assert wanted.status_code == 200, wanted.text
    check_ranked(wanted.json()["results"], expected, "relevanceScore", top=2)

    tei = requests.post(
        f"{signed_server.url}/rerank",
        json={"query": QUERY, "texts": docs, "truncate": True},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert tei.status_code == 200, tei.text
    check_ranked(tei.json(), expected, "score")  # TEI's own shape: a bare list of {"index", "score"}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_path_is_404_once_authenticated_and_403_before(signed_server, method):
    url = f"{signed_server.url}/no/such/api"
    bearer = requests.request(method, url, headers={"Authorization": f"Bearer {TOKEN}"}, json={}, timeout=30)
    assert bearer.status_code == 404 and bearer.json()["error_type"] == "not_found", bearer.text
    assert "/no/such/api" in bearer.json()["error"]
    if method == "POST":
        sig = signed(signed_server, b"{}", service="bedrock", path="/no/such/api")
        assert sig.status_code == 404 and sig.json()["error_type"] == "not_found", sig.text
    anonymous = requests.request(method, url, json={}, timeout=30)
    assert anonymous.status_code == 403 and anonymous.json()["error_type"] == "authentication"  # auth comes first


def test_relevance_scores_go_out_with_at_most_9_significant_digits(signed_server, reference):
    """ml-commons' JSON reader makes a number of more than 18 characters a BigDecimal, which its built-in Cohere
    post-process cannot cast to Double: no number in these replies is longer than 15 characters."""
    docs = documents(reference)
    cohere = {"query": QUERY, "documents": docs, "model": "rerank-english-v3.0"}
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    replies = [
        requests.post(f"{signed_server.url}/v1/rerank", json=cohere, headers=bearer, timeout=30),
        requests.post(f"{signed_server.url}/v2/rerank", json=cohere, headers=bearer, timeout=30),
        signed(
            signed_server,
            json.dumps({"query": QUERY, "documents": docs}).encode(),
            service="bedrock",
            path="/model/amazon.rerank-v1:0/invoke",
        ),
        signed(signed_server, agent_runtime_body(QUERY, docs), service="bedrock", path="/rerank"),
    ]
    for reply in replies:
        assert reply.status_code == 200, reply.text
        numbers = re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", re.sub(r'"(?:[^"\\]|\\.)*"', '""', reply.text))
        assert numbers and max(len(n) for n in numbers) <= 15, numbers
        raw = json.loads(reply.text, parse_float=str)["results"]  # each score as the text it was sent as
        scores = [r.get("relevance_score", r.get("relevanceScore")) for r in raw]
        assert len(scores) == len(docs) and all(isinstance(s, str) for s in scores), raw  # never an integer
        for score in scores:
            mantissa = re.sub(r"[eE].*$", "", score).replace("-", "").replace(".", "").lstrip("0")
            assert 0 < len(mantissa) <= 9, score
