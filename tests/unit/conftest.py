"""The unit suite's own model and data: everything it reads is in the repository (tests/data), so it runs from a
fresh clone, without ../shared, in under a minute.

``tiny_model_dir`` is the tiny BERT cross-encoder tests/models/build_tiny_model.py builds (its PyTorch reference
scores beside it); ``reference`` and ``scorer`` are overridden here to use it, and ``gate_pairs`` (which the root
conftest's ``gate_file`` uses) is built from literal texts. ``test_model_dir`` (the realistic model in ../shared)
is refused here, so no unit test can come to depend on it unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REPO

TINY_MODEL = REPO / "tests" / "data" / "tiny-cross-encoder"
TINY_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx", "reference_scores.json")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    missing = [name for name in TINY_FILES if not (TINY_MODEL / name).exists()]
    if missing:
        pytest.fail(
            f"the unit suite's tiny cross-encoder is incomplete at {TINY_MODEL} (missing: {', '.join(missing)}): "
            "build it with `python tests/models/build_tiny_model.py` (it is committed to the repository)"
        )
    return TINY_MODEL


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    pytest.fail("unit tests use tiny_model_dir (tests/data/tiny-cross-encoder), not the model in ../shared")


@pytest.fixture(scope="session")
def reference(tiny_model_dir: Path) -> list[dict[str, Any]]:
    return json.loads((tiny_model_dir / "reference_scores.json").read_text())["pairs"]


@pytest.fixture(scope="session")
def scorer(tiny_model_dir: Path) -> Any:
    from osrerank.scorer import load_scorer

    return load_scorer(tiny_model_dir)


TOPICS = {
    "How do volcanoes erupt?": "magma rises through the crust and pressure builds until gas and lava escape",
    "Why is the sky blue?": "sunlight scatters off air molecules and the short blue wavelengths scatter most",
    "What do bees make?": "bees gather nectar from flowers and turn it into honey and wax in the hive",
    "How are tides caused?": "the moon pulls the oceans and the water rises and falls twice a day",
    "What powers a steam engine?": "burning coal boils water and the steam pushes a piston back and forth",
    "How do plants feed?": "leaves catch sunlight and turn water and carbon dioxide into sugar",
}


@pytest.fixture(scope="session")
def gate_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six queries with eight candidate documents each (48 pairs, the rerank shape the precision gate judges),
    made of literal texts: each query's own passage, variations of it, and the other topics' passages."""
    passages = list(TOPICS.values())
    lines = []
    for i, (query, own) in enumerate(TOPICS.items()):
        others = [passages[(i + k) % len(passages)] for k in range(1, len(passages))]
        documents = [own, f"In short: {own}.", f"{own}, as every textbook explains", *others[:5]]
        lines.append(json.dumps({"query": query, "documents": documents}) + "\n")
    path = tmp_path_factory.mktemp("gate") / "gate.jsonl"
    path.write_text("".join(lines))
    return path
