"""Every foreign error and user mistake reaches the user as one line naming the fix: exit code 1 (an
OsRerankError) or 2 (a usage error), and never a traceback. Each runs the real `osrerank` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import DEFAULT_TEST_MODEL


def osrerank(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OSRERANK_", "AWS_"))}
    command = [sys.executable, "-m", "osrerank", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**clean, **(env or {})}, cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_unreachable_cluster_opensearch_py(tmp_path):
    proc = osrerank("search", "q", "--opensearch-url", "http://127.0.0.1:9", env={"OSRERANK_CACHE": str(tmp_path)})
    assert_one_line_error(proc, 1, "cannot reach OpenSearch at http://127.0.0.1:9", "--opensearch-url")


def test_no_local_cluster_running(tmp_path):
    proc = osrerank("cluster", "status", env={"OSRERANK_CACHE": str(tmp_path)})
    assert_one_line_error(proc, 1, "no local OpenSearch 3.6.0 is running", "osrerank cluster up")


def test_missing_maven_subprocess(tmp_path):
    java = Path(sys.executable).parent
    proc = osrerank("cluster", "up", env={"OSRERANK_CACHE": str(tmp_path), "PATH": f"{java}:/usr/bin/nonexistent"})
    assert_one_line_error(proc, 1, "mvn (Apache Maven) is needed", "apt-get install maven")


def test_no_aws_credentials_botocore(tmp_path):
    aws = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "OSRERANK_CACHE": str(tmp_path),
    }
    proc = osrerank(
        "deploy", "--target", "sagemaker", "--model", "cross-encoder/ms-marco-MiniLM-L-6-v2",
        "--role-arn", "arn:aws:iam::123456789012:role/x", env=aws,
    )  # fmt: skip
    assert_one_line_error(proc, 1, "no AWS credentials", "AWS_ACCESS_KEY_ID")


def test_broken_onnx_file_onnxruntime(tmp_path):
    model = tmp_path / "model"
    (model / "onnx").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (model / name).write_bytes((DEFAULT_TEST_MODEL / name).read_bytes())
    (model / "onnx" / "model.onnx").write_bytes(b"not an onnx graph")
    proc = osrerank("serve", "--model", str(model), "--no-auth", "--port", "0")
    assert_one_line_error(proc, 1, "ONNX Runtime cannot load", "model.onnx")


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_port_out_of_range(port):
    proc = osrerank("serve", "--model", str(DEFAULT_TEST_MODEL), "--no-auth", "--port", port)
    assert_one_line_error(proc, 1, f"port {port} is out of range")


def test_window_smaller_than_size_is_a_usage_error():
    proc = osrerank("search", "x", "--window", "2", "--size", "5")
    assert_one_line_error(proc, 2, "--window 2 is smaller than --size 5")


def test_unknown_template_starts_nothing(tmp_path):
    proc = osrerank(
        "setup", "--template", "nosuch", "--opensearch-url", "http://127.0.0.1:9", env={"OSRERANK_CACHE": str(tmp_path)}
    )
    assert_one_line_error(
        proc, 1, "unknown connector template 'nosuch'", "sagemaker-hf-text-classification, tei-rerank"
    )
    assert not (tmp_path / "endpoint").exists()  # no stand-in was started


def test_missing_model_folder_starts_nothing(tmp_path):
    proc = osrerank(
        "setup",
        "--model",
        "/nonexistent",
        "--opensearch-url",
        "http://127.0.0.1:9",
        env={"OSRERANK_CACHE": str(tmp_path)},
    )
    assert_one_line_error(proc, 1, "'/nonexistent' is neither a model folder nor a hub id")
    assert not (tmp_path / "endpoint").exists()


def test_config_errors_name_flag_variable_and_key_and_never_echo_a_secret(tmp_path):
    (tmp_path / "bad.toml").write_text("opensearch_password = 123456789\ntimeout_s = -1\n")
    proc = osrerank("search", "x", "--config", str(tmp_path / "bad.toml"))
    assert_one_line_error(proc, 1, "variable OSRERANK_OPENSEARCH_PASSWORD", "config key opensearch_password")
    assert "123456789" not in proc.stderr
    assert "timeout_s = -1" in proc.stderr and "--timeout" in proc.stderr and "OSRERANK_TIMEOUT_S" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-batch", "32", "--on-model-failure", "first-stage"], "first-stage cannot go with --max-batch"),
        (["--target", "opensearch", "--max-batch", "32"], "the opensearch target has no server: drop --max-batch"),
    ],
    ids=["fail-open-per-hit", "in-cluster-batch-limit"],
)
def test_what_a_batch_limit_cannot_go_with_starts_nothing(tmp_path, flags, message):
    """Refused before a cluster is asked or a stand-in starts (the cluster URL is a closed port)."""
    proc = osrerank(
        "setup",
        "--model",
        str(DEFAULT_TEST_MODEL),
        "--opensearch-url",
        "http://127.0.0.1:9",
        *flags,
        env={"OSRERANK_CACHE": str(tmp_path)},
    )
    assert_one_line_error(proc, 1, message)
    assert not (tmp_path / "endpoint").exists()
