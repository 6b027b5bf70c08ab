"""The stand-in over real HTTP (uvicorn in a thread): exactness, batching, APIs, errors, SigV4."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from osrerank.server.app import create_app
from osrerank.server.sigv4 import SigV4Verifier

from ..conftest import ServerThread

KEY, SECRET, REGION = "AKIATESTKEY", "test-secret-key", "us-west-2"


@pytest.fixture(scope="module")
def open_server(scorer):
    with ServerThread(create_app(scorer, max_wait_s=0.01)) as server:
        yield server


@pytest.fixture(scope="module")
def signed_server(scorer):
    with ServerThread(create_app(scorer, verifier=SigV4Verifier(KEY, SECRET, REGION))) as server:
        yield server


def body_for(pairs, truncation=True):
    body = {"inputs": [{"text": q, "text_pair": d} for q, d in pairs]}
    if truncation:
        body["parameters"] = {"truncation": True}
    return body


def invoke(server, pairs, **kwargs):
    return requests.post(f"{server.url}/invocations", json=body_for(pairs, **kwargs), timeout=60)


def test_every_reference_pair_in_one_request(open_server, reference):
    reply = invoke(open_server, [(p["query"], p["document"]) for p in reference])
    assert reply.status_code == 200, reply.text
    assert [r["label"] for r in reply.json()] == ["LABEL_0"] * len(reference)
    np.testing.assert_allclose([r["score"] for r in reply.json()], [p["sigmoid"] for p in reference], atol=1e-5)


def test_reference_pairs_over_many_concurrent_requests_keep_their_order(open_server, reference):
    chunks = [reference[i : i + 3] for i in range(0, len(reference), 3)] * 2  # 18 requests, 16 at a time
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda c: invoke(open_server, [(p["query"], p["document"]) for p in c]), chunks))
    for chunk, reply in zip(chunks, replies, strict=True):
        assert reply.status_code == 200
        np.testing.assert_allclose([r["score"] for r in reply.json()], [p["sigmoid"] for p in chunk], atol=1e-5)
    metrics = requests.get(f"{open_server.url}/metrics", timeout=10).text
    assert "osrerank_batch_pairs_max" in metrics


def test_raw_logits_with_function_to_apply_none(scorer, reference):
    with ServerThread(create_app(scorer, activation="none")) as server:
        reply = invoke(server, [(p["query"], p["document"]) for p in reference])
    np.testing.assert_allclose([r["score"] for r in reply.json()], [p["logit"] for p in reference], atol=1e-4)


def test_function_to_apply_none_per_request_overrides_the_server_default(open_server, reference):
    body = body_for([(p["query"], p["document"]) for p in reference])
    body["parameters"]["function_to_apply"] = "none"
    reply = requests.post(f"{open_server.url}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose([r["score"] for r in reply.json()], [p["logit"] for p in reference], atol=1e-4)


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


def test_overlong_pair_without_truncation_is_400_like_the_hf_container(open_server, reference):
    long_pair = next((p["query"], p["document"]) for p in reference if p["tokens"] >= 512)
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
        b'{"inputs": []}',
        b'{"inputs": [{"text": "q"}]}',
        b'{"inputs": [{"text": 1, "text_pair": "d"}]}',
        b"[1, 2]",
        b'{"inputs": [{"text": "q", "text_pair": "d"}], "parameters": 3}',
        b'{"inputs": [{"text": "q", "text_pair": "d"}], "parameters": {"function_to_apply": "softmax"}}',
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
    secret=SECRET,
    when: datetime | None = None,
    tamper: bytes | None = None,
    token: str | None = None,
):
    url = f"{server.url}/endpoints/my-endpoint/invocations"
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    if when is not None:
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        signer = SigV4Auth(Credentials(KEY, secret, token), "sagemaker", REGION)
        signer._modify_request_before_signing(request)
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        signer._inject_signature_to_request(request, signature)
    else:
        SigV4Auth(Credentials(KEY, secret, token), "sagemaker", REGION).add_auth(request)
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


def test_ping_stays_public(signed_server):
    assert requests.get(f"{signed_server.url}/ping", timeout=5).status_code == 200


def test_verifier_repr_hides_the_secret():
    assert SECRET not in repr(SigV4Verifier(KEY, SECRET, REGION))
