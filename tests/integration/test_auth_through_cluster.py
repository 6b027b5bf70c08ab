"""Authentication end to end: ml-commons signs (SigV4) or sends the bearer token, the stand-in checks.

The accept path alone would pass with the stand-in's auth switched off; these tests need the refusals
too: a wrong secret, another region and another service each fail the prediction with the stand-in's
reason, and the stand-in counts every one of them on /metrics.
"""

from __future__ import annotations

import json

import pytest
import requests

from osrerank.connector import ConnectorOptions, render_connector
from osrerank.targets.local_secrets import local_secrets
from osrerank.types import Credentials

from .kit import one_node_only
from .rest import Rest, scores_of

pytestmark = [
    pytest.mark.integration,
    one_node_only(
        "signing and its refusals depend on no cluster shape"
        " (the ML node signs with the same ml-commons code as a single node): the one-node lines run them on both lines"
    ),
]

QUERY, DOCS = "What is the capital of the United States?", ["Washington, D.C. is the capital.", "Carson City."]


def rejections(standin) -> int:
    text = requests.get(f"{standin.base_url}/metrics", timeout=10).text
    rows = [line for line in text.splitlines() if line.startswith('osrerank_rejected_total{reason="authentication"}')]
    return int(rows[0].split()[-1]) if rows else 0


def predict_with(rest: Rest, connector: dict, name: str) -> requests.Response:
    connector_id, model_id = rest.remote_model(connector, name)
    try:
        return rest.predict(model_id, QUERY, DOCS)
    finally:
        rest.remove_remote_model(connector_id, model_id)


def connector_for(template: str, url: str, credentials: Credentials, name: str, region: str = "us-east-1") -> dict:
    options = ConnectorOptions(region=region)
    return render_connector(options, template, url, credentials, name=f"{name}-connector", description="auth test")


def sagemaker_connector(standin, name: str, credentials: Credentials, region: str = "us-east-1") -> dict:
    template = "sagemaker-hf-text-classification"
    return connector_for(template, standin.url_for(template, name), credentials, name, region)


def test_the_stand_in_under_test_checks_signatures(standin):
    assert standin.server_spec.server.auth, "the session stand-in must run with auth on"
    body = json.dumps({"inputs": [{"text": QUERY, "text_pair": DOCS[0]}]})
    reply = requests.post(standin.url_for("sagemaker-hf-text-classification", "x"), data=body, timeout=30)
    assert reply.status_code == 403 and reply.json()["error_type"] == "authentication"


def test_correctly_signed_connector_scores(os_client, standin, scorer):
    local = local_secrets()
    connector = sagemaker_connector(standin, "auth-ok", Credentials(local.access_key, local.secret_key))
    scores = scores_of(predict_with(Rest(os_client.url), connector, "auth-ok"))
    assert scores == pytest.approx(list(scorer.predict([(QUERY, d) for d in DOCS])), abs=1e-5)  # transport only


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("secret", "signature does not match"),
        ("region", "credential scope us-west-2/sagemaker does not match"),
        ("service", "credential scope us-east-1/es does not match"),
    ],
)
def test_wrongly_signed_connector_gets_the_stand_ins_reason(os_client, standin, change, reason):
    local = local_secrets()
    secret = "not-the-secret" if change == "secret" else local.secret_key
    connector = sagemaker_connector(
        standin,
        f"auth-{change}",
        Credentials(local.access_key, secret),
        "us-west-2" if change == "region" else "us-east-1",
    )
    if change == "service":
        connector["parameters"]["service_name"] = "es"
    before = rejections(standin)
    reply = predict_with(Rest(os_client.url), connector, f"auth-{change}")
    assert reply.status_code == 403 and reason in reply.text
    assert rejections(standin) == before + 1


@pytest.mark.parametrize(("template", "path"), [("tei-rerank", "/rerank"), ("torchserve-pairs", "/predictions/m")])
def test_bearer_token_connectors(os_client, standin, scorer, template, path):
    rest = Rest(os_client.url)
    url = f"{standin.cluster_base_url}{path}"
    token = local_secrets().bearer_token
    good = connector_for(template, url, Credentials(bearer_token=token), f"bearer-{template}")
    scores = scores_of(predict_with(rest, good, f"bearer-{template}"))
    assert scores == pytest.approx(list(scorer.predict([(QUERY, d) for d in DOCS])), abs=1e-5)  # transport only
    before = rejections(standin)
    for credentials in (Credentials(bearer_token="not-the-token"), Credentials()):
        bad = connector_for(template, url, credentials, f"bearer-{template}")
        reply = predict_with(rest, bad, f"bearer-{template}")
        assert reply.status_code == 403, reply.text
    assert rejections(standin) == before + 2
    # the token is stored as an (encrypted) credential and filled into the header by ml-commons
    assert good["actions"][0]["headers"]["Authorization"] == "Bearer ${credential.bearer_token}"
