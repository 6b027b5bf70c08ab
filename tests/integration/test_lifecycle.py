"""Setup and teardown judged by the cluster itself, for each target that can run here.

Every check asks OpenSearch directly (raw REST, see rest.py), never the kit's own labels: after setup
each object exists; a second setup makes nothing new and returns the same ids; teardown leaves every
model, chunk, group, connector, pipeline and kit-owned index answering 404 and the stand-in process
gone; ``keep_index`` keeps exactly the index. (The SageMaker target's AWS side is checked against moto
in tests/unit/test_sagemaker_deploy.py: no SageMaker endpoint can answer a real cluster here.)
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from osrerank.demo import TUTORIAL_PASSAGES, TUTORIAL_QUERY
from osrerank.ingest import create_index, load_documents
from osrerank.reranker import Reranker
from osrerank.targets.standin import StandInProcess

from .kit import settings_for
from .rest import Rest, diff

pytestmark = pytest.mark.integration


def object_paths(new: dict[str, set[str]]) -> list[str]:
    """The GET path of every object in a snapshot difference. Model chunks are left to the snapshot (a
    search): a GET returns a chunk's 9 MB, enough of them trips the node's memory circuit breaker."""
    prefix = {
        "connectors": "/_plugins/_ml/connectors/",
        "models": "/_plugins/_ml/models/",
        "groups": "/_plugins/_ml/model_groups/",
        "pipelines": "/_search/pipeline/",
        "indices": "/",
    }
    return [prefix[kind] + name for kind, names in sorted(new.items()) if kind in prefix for name in sorted(names)]


def port_open(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, int(port))) == 0


def load_tutorial(reranker: Reranker) -> None:
    cluster = reranker.cluster()
    index = reranker.settings.index
    create_index(cluster, index.name, index.document_fields, recreate=True)
    load_documents(cluster, index.name, [{"passage_text": p} for p in TUTORIAL_PASSAGES])


def check_lifecycle(
    reranker: Reranker,
    rest: Rest,
    expected_kinds: set[str],
    expected_scores: list[float],
    after_setup: Callable[[], None] = lambda: None,
) -> dict[str, set[str]]:
    """Setup twice, then teardown keeping the index, then teardown; returns what setup created."""
    s = reranker.settings
    before = rest.snapshot()
    first = reranker.setup()
    after_setup()
    load_tutorial(reranker)
    created = diff(rest.snapshot(), before)
    assert set(created) == expected_kinds, created
    assert created["pipelines"] == {s.pipeline.name} and created["indices"] == {s.index.name}
    assert created["models"] == {first.model_id} and created["groups"] == {first.steps["model group"].id}
    for path in object_paths(created):
        assert rest.status(path) == 200, f"{path} does not exist after setup"
    model = rest.request("GET", f"/_plugins/_ml/models/{first.model_id}")
    assert model["model_state"] == "DEPLOYED"
    # The model can report DEPLOYED a moment before its deploy task is marked done (seen on 2.19).
    rest.wait(
        lambda: all(t["state"] not in ("CREATED", "RUNNING") for t in deploy_tasks(rest, first.model_id)), "deploy task"
    )
    assert [t["state"] for t in deploy_tasks(rest, first.model_id)] == ["COMPLETED"]

    second = reranker.setup()
    assert len(deploy_tasks(rest, first.model_id)) == 1, "the second setup deployed again"
    assert diff(rest.snapshot(), before) == created, "the second setup changed what exists"
    assert {k: f.id for k, f in second.steps.items()} == {k: f.id for k, f in first.steps.items()}
    assert {f.action for f in second.steps.values()} == {"reused"}, second.steps  # the same Reranker, run again
    hits = reranker.search(TUTORIAL_QUERY, size=4, match_all=True).hits  # and the pipeline reranks
    assert [h.score for h in hits] == pytest.approx(sorted(expected_scores, reverse=True), abs=1e-5)

    reranker.teardown(keep_index=True)
    assert diff(rest.snapshot(), before) == {"indices": {s.index.name}}, "keep_index must keep exactly the index"
    reranker.teardown()
    assert diff(rest.snapshot(), before) == {}
    for path in object_paths(created):
        assert rest.status(path) == 404, f"{path} is still there after teardown"
    return created


def deploy_tasks(rest: Rest, model_id: str) -> list[dict]:
    return [t for t in rest.model_tasks(model_id) if t["task_type"] == "DEPLOY_MODEL"]


def tutorial_scores(scorer) -> list[float]:
    return list(scorer.predict([(TUTORIAL_QUERY, p) for p in TUTORIAL_PASSAGES]))


def test_stand_in_target(local_cluster, test_model_dir, scorer):
    rest = Rest(local_cluster.url)
    reranker = Reranker(settings_for(local_cluster.url, test_model_dir, "life", connector={"timeout_s": 10}))
    endpoint = StandInProcess("life")
    started = []

    def stand_in_runs() -> None:
        info = endpoint.info()
        assert info is not None and port_open(info.base_url)
        started.append(info.base_url)

    try:
        kinds = {"connectors", "models", "groups", "pipelines", "indices"}
        created = check_lifecycle(reranker, rest, kinds, tutorial_scores(scorer), after_setup=stand_in_runs)
        assert len(created["connectors"]) == 1
        assert not port_open(started[0]), "the stand-in still answers after teardown"
        assert endpoint.info() is None
    finally:
        reranker.teardown()


def test_in_cluster_target(os_client, local_cluster, test_model_dir, scorer):
    if os_client.version < (3, 0, 0):
        pytest.skip("2.19 cannot deploy in-cluster offline (test_in_cluster checks its error)")
    rest = Rest(local_cluster.url)
    reranker = Reranker(settings_for(local_cluster.url, test_model_dir, "lifein", target="opensearch"))
    try:
        kinds = {"models", "chunks", "groups", "pipelines", "indices"}
        created = check_lifecycle(reranker, rest, kinds, tutorial_scores(scorer))
        (model_id,) = created["models"]
        assert created["chunks"] and all(c.startswith(f"{model_id}_") for c in created["chunks"])
    finally:
        reranker.teardown()
