"""Reranker.setup / teardown against an in-memory cluster (tests/unit/fake_opensearch.py): the order of
steps, reuse by name, and what teardown removes, without a JVM. The real cluster suite checks the same
against OpenSearch itself (tests/integration/test_lifecycle.py)."""

from __future__ import annotations

import pytest

from osrerank.errors import ConfigError, ModelLoadError, TemplateError
from osrerank.opensearch import Cluster
from osrerank.reranker import Reranker
from osrerank.settings import Settings

from .fake_opensearch import FakeOpenSearch

URL = "http://127.0.0.1:9/endpoints/x/invocations"  # never called: the fake cluster answers for the model


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))  # setup's records stay out of the user's cache
    fake = FakeOpenSearch()
    monkeypatch.setattr("osrerank.reranker.connect", lambda options, url=None: Cluster(fake, "http://fake"))  # type: ignore[arg-type]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    return fake


SETTINGS = Settings(name="orch", cluster="http://fake", connector=URL)


def reranker(**changes) -> Reranker:
    """A reranker on the fake cluster, with an endpoint given (no stand-in starts): ``changes`` as for
    ``Settings.updated``."""
    return Reranker(SETTINGS.updated(**changes))


def test_setup_creates_each_object_once_and_reuses_them(fake):
    first = reranker().setup()
    # the model server first: a failure to bring it up leaves the cluster untouched
    assert list(first.steps) == ["endpoint", "model group", "connector", "model", "pipeline"]
    assert {s: f.action for s, f in first.steps.items() if s != "endpoint"} == dict.fromkeys(
        ["model group", "connector", "model", "pipeline"], "created"
    )
    counts = {kind: len(objects) for kind, objects in fake.objects.items()}
    assert counts == {"connectors": 1, "models": 1, "model_groups": 1} and list(fake.pipelines) == ["osrerank-rerank"]
    assert fake.objects["models"][first.model_id]["model_state"] == "DEPLOYED"
    deploys = [c for c in fake.calls if c[1].endswith("/_deploy")]
    assert len(deploys) == 1  # one deploy, and no register-with-deploy
    second = reranker().setup()
    assert {s: f.id for s, f in second.steps.items()} == {s: f.id for s, f in first.steps.items()}
    assert all(f.action == "reused" for f in second.steps.values())
    assert {kind: len(objects) for kind, objects in fake.objects.items()} == counts


def test_a_setup_right_after_another_does_not_deploy_again(fake):
    """The model index is searched as of its last refresh: a second setup within that second found the model
    REGISTERED and deployed it again (seen in CI on 2.19.6). The state comes from a GET."""
    first = reranker().setup()
    fake.unrefreshed[first.model_id] = {"model_state": "REGISTERED"}
    reranker().setup()
    assert len([c for c in fake.calls if c[1].endswith("/_deploy")]) == 1


def test_a_changed_endpoint_replaces_the_connector_and_its_model(fake):
    first = reranker().setup()
    moved = reranker(connector={"endpoint_url": "http://127.0.0.1:10/endpoints/x/invocations"}).setup()
    assert moved.steps["connector"].action == "replaced" and moved.steps["model"].action == "created"
    assert moved.steps["model group"].id == first.steps["model group"].id
    assert set(fake.objects["models"]) == {moved.model_id}


def test_teardown_removes_everything_and_a_dry_run_nothing(fake):
    reranker().setup()
    plan = reranker().teardown(dry_run=True)
    assert len(fake.objects["models"]) == 1 and fake.pipelines
    assert reranker().teardown() == plan
    assert fake.objects == {"connectors": {}, "models": {}, "model_groups": {}} and fake.pipelines == {}
    assert reranker().teardown() == []


def test_predict_and_rank_go_through_the_registered_model(fake):
    reranker().setup()
    assert reranker().predict("q", ["a", "b", "c"]) == [1.0, 0.5, 1 / 3]
    assert [r["corpus_id"] for r in reranker().rank("q", ["a", "b", "c"], top_k=2)] == [0, 1]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"connector": {"template": "nosuch"}}, TemplateError, "unknown connector template 'nosuch'"),
        ({"connector": {"template": "../../../../tmp/x"}}, TemplateError, "unknown connector template"),
        ({"target": "nowhere"}, ConfigError, "target = 'nowhere': Input should be 'standin', 'sagemaker'"),
        (
            {"connector": {"endpoint_url": None}, "model": "/nonexistent/model"},
            ModelLoadError,
            "neither a model folder nor a hub id",
        ),
        ({"pipeline": {"max_batch": 32}, "target": "opensearch"}, ConfigError, "the opensearch target has no server"),
    ],
    ids=["unknown-template", "template-path", "unknown-target", "missing-model", "in-cluster-batch-limit"],
)
def test_bad_settings_are_refused_before_anything_is_created(fake, changes, error, message):
    with pytest.raises(error, match=message):
        reranker(**changes).setup()  # an unknown target is refused already when the settings are made
    assert fake.calls == []


def test_a_stand_in_that_refuses_its_settings_leaves_the_cluster_untouched(fake, tiny_model_dir, monkeypatch):
    """The stand-in decides the precision when it starts; its refusal (one line, a ConfigError) stops setup
    before the cluster is asked for anything."""
    refusal = "--precision int8 changes the ranking too much on the built-in sample"

    def refuse(self, spec):
        assert spec.model.path == str(tiny_model_dir) and spec.model.precision == "int8"
        raise ConfigError(refusal)

    monkeypatch.setattr("osrerank.targets.standin.StandInProcess.start", refuse)
    standin = reranker(connector={"endpoint_url": None}, model={"path": str(tiny_model_dir), "precision": "int8"})
    with pytest.raises(ConfigError, match=f"setup stopped at step 'model server': {refusal}") as stopped:
        standin.setup()
    assert "Already in place: nothing" in str(stopped.value)
    assert fake.calls == []


def test_a_connector_whose_model_the_search_missed_is_deleted_with_it():
    """ml-commons refuses to delete a connector a model still uses (409), and its model search can miss a model
    registered just before: the connector's models are looked up again until it goes."""
    from osrerank.connector import delete_connector
    from osrerank.errors import Conflict

    class LaggingML:
        def __init__(self) -> None:
            self.models, self.lookups, self.deleted_models, self.connector_gone = {"m1"}, 0, [], False

        def models_using(self, connector_id: str) -> list[str]:
            self.lookups += 1
            return [] if self.lookups == 1 else sorted(self.models)  # the first search lags the registration

        def delete_model(self, model_id: str) -> None:
            self.models.discard(model_id)
            self.deleted_models.append(model_id)

        def delete_connector(self, connector_id: str) -> bool:
            if self.models:
                raise Conflict("1 models are still using this connector", status=409)
            self.connector_gone = True
            return True

    ml = LaggingML()
    assert delete_connector(ml, "c1", wait_s=5) == ["m1"]  # type: ignore[arg-type]
    assert ml.connector_gone and ml.deleted_models == ["m1"]


def test_a_connector_ml_commons_misjudges_in_use_says_what_lets_it_go_when_the_way_round_is_refused(monkeypatch):
    """When ml-commons refuses over a model on another connector and the cluster (security plugin) refuses the
    direct delete too, the error names the blocking model, its connector, why, and the fix; the connector's
    own model was still deleted first, and nothing is deleted while the verdict has held only once."""
    import osrerank.connector as connector
    from osrerank.errors import ConfigError, Conflict, OpenSearchError

    monkeypatch.setattr(connector, "REFRESH_S", 0.01)

    class SecuredML:
        def __init__(self) -> None:
            self.own, self.deleted_models, self.attempts, self.document_deletes = ["m1"], [], 0, 0

        def models_using(self, connector_id: str) -> list[str]:
            return list(self.own)

        def delete_model(self, model_id: str) -> None:
            self.own.remove(model_id)
            self.deleted_models.append(model_id)

        def delete_connector(self, connector_id: str) -> bool:
            self.attempts += 1
            raise Conflict(
                "DELETE /_plugins/_ml/connectors/dz-c1 failed (409): 1 models are still using this connector, "
                "please delete or update the models first: [Ej-other]",
                status=409,
            )

        def connectors_of(self, model_ids: list[str]) -> dict[str, str | None]:
            return {"Ej-other": "dz-c2"}

        def delete_connector_document(self, connector_id: str) -> None:
            self.document_deletes += 1
            raise OpenSearchError("DELETE /.plugins-ml-connector/_doc/dz-c1 failed (403): no permissions", status=403)

    ml = SecuredML()
    with pytest.raises(ConfigError) as refused:
        connector.delete_connector(ml, "dz-c1", wait_s=5)  # type: ignore[arg-type]
    assert ml.deleted_models == ["m1"] and ml.attempts == 2 and ml.document_deletes == 1
    message = str(refused.value)
    assert "Ej-other (on connector dz-c2)" in message and "matches connector ids as text" in message
    assert "DELETE .plugins-ml-connector/_doc/dz-c1" in message
