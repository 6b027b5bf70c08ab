"""Shared fixtures. The test model and the reference scores come from ../shared (or OSRERANK_TEST_MODEL);
when they are missing the tests fail with a message saying where they should be, never skip."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEST_MODEL = REPO.parent / "shared" / "models" / "minilm-l6-random-head"


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    path = Path(os.environ.get("OSRERANK_TEST_MODEL", DEFAULT_TEST_MODEL))
    if not (path / "onnx" / "model.onnx").exists() or not (path / "reference_scores.json").exists():
        pytest.fail(
            f"test cross-encoder not found at {path}: expected onnx/model.onnx and reference_scores.json. "
            "Put minilm-l6-random-head there or set OSRERANK_TEST_MODEL to its folder."
        )
    return path


ARCHITECTURES = ("xlmr", "modernbert")


@pytest.fixture(scope="session")
def arch_models() -> dict[str, Path]:
    """The XLM-R and ModernBERT test cross-encoders, built once (about 40 s, needs torch) into the cache by
    tests/models/build_test_models.py; a changed script builds into a new folder."""
    import hashlib
    import subprocess
    import sys

    from osrerank.paths import cache_root

    script = REPO / "tests" / "models" / "build_test_models.py"
    out = cache_root() / "test-models" / hashlib.sha256(script.read_bytes()).hexdigest()[:12]
    folders = {arch: out / f"{arch}-tiny-random-head" for arch in ARCHITECTURES}
    if not all((f / "reference_scores.json").exists() for f in folders.values()):
        subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=900)
    return folders


@pytest.fixture(scope="session")
def decoder_models() -> dict[str, Path]:
    """The tiny decoder (LLM) rerankers, one per format (qwen3-reranker, bge-reranker-gemma), built once (about
    10 s, needs torch and transformers) into the cache by tests/models/build_decoder_models.py."""
    import hashlib
    import subprocess
    import sys

    from osrerank.paths import cache_root

    script = REPO / "tests" / "models" / "build_decoder_models.py"
    out = cache_root() / "test-models" / f"decoders-{hashlib.sha256(script.read_bytes()).hexdigest()[:12]}"
    folders = {"qwen3-reranker": out / "qwen3-reranker-tiny", "bge-reranker-gemma": out / "bge-gemma-tiny"}
    if not all((f / "reference_scores.json").exists() for f in folders.values()):
        subprocess.run([sys.executable, str(script), str(out), "--no-st-check"], check=True, timeout=900)
    return folders


@pytest.fixture(scope="session")
def reference(test_model_dir: Path) -> list[dict[str, Any]]:
    return json.loads((test_model_dir / "reference_scores.json").read_text())["pairs"]


class ServerThread:
    """A real uvicorn server in a background thread, for in-process HTTP tests."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from osrerank.process import free_port

        self.port = free_port()
        # a test's server may hold a request open on purpose (a slow model): on exit it gets 1 s, not forever
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def scorer(test_model_dir: Path) -> Any:
    from osrerank.scorer import load_scorer

    return load_scorer(test_model_dir)


@pytest.fixture(scope="session")
def local_cluster(record_testsuite_property: Any) -> Iterator[Any]:
    """The real OpenSearch node for the integration suite (version: OSRERANK_CLUSTER__VERSION).

    With OSRERANK_CLUSTER=testcontainers (and a Docker engine) it is a container instead; see
    osrerank/launcher/containers.py for the OSRERANK_ENDPOINT_HOST setting that goes with it.
    """
    from osrerank.launcher import LocalOpenSearch
    from osrerank.launcher.containers import ContainerOpenSearch, cluster_kind

    if cluster_kind() == "testcontainers":
        container = ContainerOpenSearch()
        info = container.up()
        record_testsuite_property("opensearch_version", info.version)
        yield info
        container.down()
        return

    from osrerank.settings import Settings

    options = Settings.resolve({}).cluster  # OSRERANK_CLUSTER__VERSION / __NODES, as every command reads them
    nodes = options.nodes or 1  # explicit: a running cluster of another size is restarted
    cluster = LocalOpenSearch(options.version, nodes=nodes, progress=lambda m: print(f"[cluster] {m}", flush=True))
    was_running = cluster.running_url() is not None
    info = cluster.up()
    shape = f"x{len(info.nodes)}" if len(info.nodes) > 1 else ""
    record_testsuite_property("opensearch_version", info.version + shape)  # .ci/check_results.py checks the line
    yield info
    if not was_running:
        cluster.down()


@pytest.fixture(scope="session")
def os_client(local_cluster: Any) -> Any:
    from osrerank.opensearch import ClusterOptions, connect

    return connect(ClusterOptions(), local_cluster.url)


def start_standin(name: str, model: Path, serve: dict[str, Any] | None = None, **scorer: Any) -> Any:
    """A stand-in process with auth on and recording of received texts; returns (StandInProcess, its info)."""
    from osrerank.scorer import ModelOptions
    from osrerank.server.options import ServerOptions
    from osrerank.server.run import ServerSpec
    from osrerank.targets.standin import StandInProcess

    process = StandInProcess(name)
    spec = ServerSpec(model=ModelOptions(path=str(model), **scorer), server=ServerOptions(record=True, **(serve or {})))
    info, _ = process.start(spec)
    return process, info


@pytest.fixture(scope="session")
def standin(test_model_dir: Path) -> Iterator[Any]:
    """The session's stand-in (sigmoid scores)."""
    process, info = start_standin("osrerank-test", test_model_dir)
    yield info
    process.stop()


@pytest.fixture
def node_log(local_cluster: Any) -> Any:
    """What the local node logs during one test: each log file is read from its size at the test's start,
    so a line an earlier test (or an earlier run on a reused node) wrote cannot satisfy a check."""
    from osrerank.launcher import LocalOpenSearch
    from osrerank.settings import Settings

    folders = LocalOpenSearch(Settings.resolve({}).cluster.version).log_dirs  # the line the suite runs on
    start = {p: p.stat().st_size for logs in folders for p in logs.glob("*.log")}

    def read() -> str:
        text = []
        for path in sorted(p for logs in folders for p in logs.glob("*.log")):
            with path.open("rb") as f:
                f.seek(start.get(path, 0))
                text.append(f.read().decode("utf-8", errors="replace"))
        return "".join(text)

    return read


def hf_pipeline_expected(rows: list[dict[str, Any]], scorer: Any, key: str = "sigmoid") -> list[float]:
    """The reference scores as the SageMaker route gives them: like the transformers pipeline of the HF
    toolkit (tests/contract), it scores a pair with an empty document on the query alone. PyTorch's
    reference encodes that pair with the separator, so for it the kit's scorer is the reference."""
    from osrerank.model import activate

    def alone(query: str) -> float:
        return float(activate(scorer.score([(query, None)]).values, "none" if key == "logit" else "sigmoid")[0])

    return [alone(r["query"]) if r["document"] == "" else r[key] for r in rows]


SCIFACT = REPO.parent / "shared" / "data" / "beir" / "scifact"


@pytest.fixture(scope="session")
def scifact_index(os_client: Any) -> Iterator[str]:
    """SciFact's corpus in one kit-owned index (named as `osrerank eval --name evalslice` names it), loaded once
    for every test that needs it; removed at the end."""
    from osrerank.eval import ensure_corpus

    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.fail(f"SciFact not found at {SCIFACT}: tests need ../shared/data/beir/scifact")
    index = "evalslice-eval-scifact"
    ensure_corpus(os_client, index, SCIFACT / "corpus.jsonl", lambda *_: None)
    yield index
    os_client.call("DELETE", f"/{index}", params={"ignore_unavailable": "true"})


@pytest.fixture(scope="session")
def gate_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six SciFact claims, eight abstracts each: small enough for a unit test, and (measured) int8 on the test
    model moves its ranking far past the gate here (Spearman about 0.98)."""
    corpus = []
    with (SCIFACT / "corpus.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            corpus.append(f"{row.get('title', '')} {row['text']}".strip())
            if len(corpus) > 400:
                break
    queries = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").read_text().splitlines()[:6]]
    path = tmp_path_factory.mktemp("gate") / "gate.jsonl"
    path.write_text(
        "".join(
            json.dumps({"query": q, "documents": [corpus[(i * 7 + j) % len(corpus)] for j in range(8)]}) + "\n"
            for i, q in enumerate(queries)
        )
    )
    return path


@pytest.fixture
def gate_file(gate_pairs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The gate pairs, with a kit cache shared by every test that uses them (in this process and the stand-ins
    it starts): the quantized graph and each mode's gate result are measured once per session, as they are
    once per machine for a user. tests/unit/test_precision.py measures into a fresh cache where that matters."""
    monkeypatch.setenv("OSRERANK_CACHE", str(gate_pairs.parent / "cache"))
    return gate_pairs
