"""The stand-in's SageMaker route answers like the real SageMaker Hugging Face inference container.

The contract is the toolkit itself: ``HuggingFaceHandlerService`` of sagemaker-huggingface-inference-toolkit 2.6.0
(the default handler of the Hugging Face PyTorch inference DLC, ``HF_TASK=text-classification``), run in-process by
``toolkit_harness.py`` in a venv of its own (``toolkit_env.py``) as multi-model-server runs it, on the XLM-R tiny
test cross-encoder (``arch_models["xlmr"]``). The same raw bodies go to the stand-in's ``POST /invocations``
(``create_app(load_scorer(folder))``, auth off, real HTTP through ``ServerThread``). Where the two differ, the
toolkit is right: each test asserts that the stand-in gives the toolkit's status class (2xx vs 4xx) and, on success,
the toolkit's JSON shape (a list, or a single object), labels, and scores within 1e-5 (raw logits within 1e-4,
the float32 gap between PyTorch and ONNX Runtime).

Run for transformers 4.37.0 (the DLC of the SageMaker tutorial) and the newest 4.x (4.57.6); the toolkit cannot
import transformers 5. What is compared:

- the 27 reference pairs in one body with ``"truncation": true`` (sigmoid scores, the pipeline's default for a
  one-label model), and the same with ``"function_to_apply": "none"`` (raw logits);
- a single ``{"text", "text_pair"}`` object, under ``"inputs"`` and bare; a bare list without ``"inputs"``;
  ``{"inputs": []}``; an unknown parameter; a pair without ``text_pair``; a pair over 512 tokens without truncation;
  ``"function_to_apply": "softmax"``; an empty document.

And that the toolkit loads the folder as built (``XLMRobertaTokenizerFast`` from its ``tokenizer.json``). The DLC's
transformers 4.37 needs tokenizers < 0.19, which cannot read the ``Metaspace`` pre-tokenizer that tokenizers >= 0.19
writes (``"split"``, no ``"add_prefix_space"``). So the body comparisons for such a toolkit run on a copy of the
folder whose ``tokenizer.json`` spells ``Metaspace`` the old way; the fixture first checks that this copy encodes the
reference pairs to the same ids as the folder's own ``tokenizer.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from osrerank.scorer import load_scorer
from osrerank.server.app import create_app

from ..conftest import ServerThread
from .toolkit_env import DLC_TRANSFORMERS, NEWEST_4X_TRANSFORMERS, toolkit_python

HARNESS = Path(__file__).with_name("toolkit_harness.py")
VERSIONS = (DLC_TRANSFORMERS, NEWEST_4X_TRANSFORMERS)
TOLERANCE = 1e-5  # for scores in [0, 1]
#: for raw logits (function_to_apply "none", -6...9 here): PyTorch and ONNX Runtime float32 differ by up to 2e-5 on
#: the reference pairs, so the tolerance the folder's PROVENANCE.md gives for logits
LOGIT_TOLERANCE = 1e-4
LABEL = "LABEL_0"

#: The bodies compared, by name (the test ids); each is sent byte for byte to both servers.
BODY_NAMES = (
    "reference_pairs_truncation",
    "reference_pairs_function_to_apply_none",
    "single_pair_object_under_inputs",
    "single_pair_object_bare",
    "bare_list_without_inputs",
    "empty_inputs",
    "unknown_parameter",
    "pair_missing_text_pair",
    "over_512_tokens_without_truncation",
    "function_to_apply_softmax",
    "empty_document",
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    def __str__(self) -> str:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body, ensure_ascii=False)
        return f"{self.status} {text if len(text) <= 400 else text[:400] + '...'}"


@dataclass(frozen=True)
class ToolkitRun:
    version: str
    model_dir: Path
    info: dict[str, Any]
    answers: dict[str, Answer]


# ------------------------------------------------------------------------------------------------ bodies


@pytest.fixture(scope="module")
def xlmr(arch_models: dict[str, Path]) -> Path:
    return arch_models["xlmr"]


@pytest.fixture(scope="module")
def reference_pairs(xlmr: Path) -> list[dict[str, Any]]:
    return json.loads((xlmr / "reference_scores.json").read_text())["pairs"]


@pytest.fixture(scope="module")
def bodies(reference_pairs: list[dict[str, Any]]) -> dict[str, str]:
    pairs = [{"text": p["query"], "text_pair": p["document"]} for p in reference_pairs]
    first = pairs[0]
    query = first["text"]
    long = max(reference_pairs, key=lambda p: len(p["document"]))  # 15,000 characters, about 3,000 tokens
    assert long["tokens"] == 512, "the over-512 body needs a pair the reference had to truncate"
    objects: dict[str, Any] = {
        "reference_pairs_truncation": {"inputs": pairs, "parameters": {"truncation": True}},
        "reference_pairs_function_to_apply_none": {
            "inputs": pairs,
            "parameters": {"truncation": True, "function_to_apply": "none"},
        },
        "single_pair_object_under_inputs": {"inputs": first},
        "single_pair_object_bare": first,
        "bare_list_without_inputs": pairs[:3],
        "empty_inputs": {"inputs": []},
        "unknown_parameter": {"inputs": pairs[:3], "parameters": {"truncation": True, "foo": 1}},
        "pair_missing_text_pair": {"inputs": [{"text": query}]},
        "over_512_tokens_without_truncation": {"inputs": [{"text": long["query"], "text_pair": long["document"]}]},
        "function_to_apply_softmax": {
            "inputs": pairs[:3],
            "parameters": {"truncation": True, "function_to_apply": "softmax"},
        },
        "empty_document": {"inputs": [{"text": query, "text_pair": ""}], "parameters": {"truncation": True}},
    }
    assert tuple(objects) == BODY_NAMES
    return {name: json.dumps(body, ensure_ascii=False) for name, body in objects.items()}


# ------------------------------------------------------------------------------------------------ the stand-in


@pytest.fixture(scope="module")
def standin_answers(xlmr: Path, bodies: dict[str, str]) -> dict[str, Answer]:
    answers = {}
    with ServerThread(create_app(load_scorer(xlmr))) as server:
        for name, body in bodies.items():
            reply = requests.post(
                f"{server.url}/invocations",
                data=body.encode("utf-8"),
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            try:
                parsed = reply.json()
            except ValueError:
                parsed = reply.text
            answers[name] = Answer(reply.status_code, parsed)
    return answers


# ------------------------------------------------------------------------------------------------ the toolkit


def harness_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        HF_TASK="text-classification",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONNOUSERSITE="1",
        OMP_NUM_THREADS="1",  # the CPU is shared; a 360k-parameter model does not need more
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def run_harness(python: Path, model_dir: Path, bodies: dict[str, str]) -> tuple[int, dict[str, Any], Any, str]:
    """(exit code, the harness's info line, the answers in body order or None, stderr)."""
    requests_json = json.dumps([{"body": b, "content_type": "application/json"} for b in bodies.values()])
    with tempfile.TemporaryDirectory(prefix="sm-toolkit-") as cwd:  # no stray `inference` module on the path
        proc = subprocess.run(
            [str(python), str(HARNESS), str(model_dir)],
            input=requests_json,
            capture_output=True,
            text=True,
            timeout=900,
            env=harness_env(),
            cwd=cwd,
        )
    info: dict[str, Any] = {}
    for line in proc.stderr.splitlines():
        if line.startswith('{"harness"'):
            info = json.loads(line)["harness"]
    answers = json.loads(proc.stdout) if proc.returncode == 0 else None
    return proc.returncode, info, answers, proc.stderr


def toolkit_tokenizers_version(python: Path) -> tuple[int, ...]:
    out = subprocess.run(
        [str(python), "-c", "import tokenizers; print(tokenizers.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=harness_env(),
    )
    return tuple(int(x) for x in out.stdout.strip().split(".")[:2])


def legacy_metaspace(node: Any) -> Any:
    """tokenizer.json as tokenizers < 0.19 reads it: Metaspace with ``add_prefix_space`` and without ``split``
    (which those versions always do)."""
    if isinstance(node, dict):
        node = {k: legacy_metaspace(v) for k, v in node.items()}
        if node.get("type") == "Metaspace" and "split" in node:
            if node.pop("split") is not True:
                raise ValueError("Metaspace split=false has no spelling before tokenizers 0.19")
            node["add_prefix_space"] = node.get("prepend_scheme", "always") != "never"
        return node
    if isinstance(node, list):
        return [legacy_metaspace(v) for v in node]
    return node


ENCODE = """
import json, sys, tokenizers
tok = tokenizers.Tokenizer.from_file(sys.argv[1])
pairs = json.load(sys.stdin)
print(json.dumps([e.ids for e in tok.encode_batch([tuple(p) for p in pairs])]))
"""


def legacy_copy(python: Path, folder: Path, pairs: list[tuple[str, str]], out: Path) -> Path:
    """The folder with its tokenizer.json in the pre-0.19 format, checked to encode ``pairs`` to the same ids
    (the toolkit's tokenizers reading the copy against osrerank's tokenizers reading the original)."""
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("onnx"))
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    (out / "tokenizer.json").write_text(json.dumps(legacy_metaspace(spec), ensure_ascii=False), encoding="utf-8")
    texts = json.dumps(pairs)
    theirs = subprocess.run(
        [str(python), "-c", ENCODE, str(out / "tokenizer.json")],
        input=texts,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=harness_env(),
    )
    ours = subprocess.run(
        [sys.executable, "-c", ENCODE, str(folder / "tokenizer.json")],
        input=texts,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert json.loads(theirs.stdout) == json.loads(ours.stdout), "the legacy tokenizer.json encodes differently"
    return out


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"transformers-{v}")
def toolkit(
    request: pytest.FixtureRequest,
    xlmr: Path,
    reference_pairs: list[dict[str, Any]],
    bodies: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> ToolkitRun:
    version = request.param
    python = toolkit_python(version)
    model_dir = xlmr
    if toolkit_tokenizers_version(python) < (0, 19):
        pairs = [(p["query"], p["document"]) for p in reference_pairs]
        model_dir = legacy_copy(python, xlmr, pairs, tmp_path_factory.mktemp(f"xlmr-legacy-{version}") / "model")
    code, info, answers, stderr = run_harness(python, model_dir, bodies)
    assert code == 0, f"the toolkit (transformers {version}) failed on {model_dir}:\n{stderr[-3000:]}"
    assert info.get("transformers") == version, info
    assert len(answers) == len(bodies)
    return ToolkitRun(
        version,
        model_dir,
        info,
        {name: Answer(a["status"], a["body"]) for name, a in zip(bodies, answers, strict=True)},
    )


# ------------------------------------------------------------------------------------------------ tests


def test_toolkit_loads_the_model_folder_as_built(toolkit: ToolkitRun, xlmr: Path, bodies: dict[str, str]) -> None:
    """The DLC can serve the folder the stand-in serves: the handler initialises on it and scores the reference
    pairs, with XLMRobertaTokenizerFast from tokenizer.json."""
    if toolkit.model_dir == xlmr:
        code, info, answers, stderr = 0, toolkit.info, None, ""
    else:
        one = {"reference_pairs_truncation": bodies["reference_pairs_truncation"]}
        code, info, answers, stderr = run_harness(toolkit_python(toolkit.version), xlmr, one)
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    assert code == 0, f"transformers {toolkit.version} cannot load {xlmr}: {tail}"
    assert info["tokenizer"] == "XLMRobertaTokenizerFast", info
    assert info["model"] == "XLMRobertaForSequenceClassification", info
    if answers is not None:
        assert answers[0]["status"] == 200, answers[0]


def shape(body: Any) -> str:
    if isinstance(body, list):
        return f"a list of {len(body)}" + (" lists" if body and isinstance(body[0], list) else "")
    return f"a {type(body).__name__}"


def scored(body: Any) -> list[dict[str, Any]]:
    """The {"label", "score"} objects of a success body, in order."""
    items = body if isinstance(body, list) else [body]
    return [x for item in items for x in (item if isinstance(item, list) else [item])]


@pytest.mark.parametrize("name", BODY_NAMES)
def test_invocations_answers_like_the_toolkit(
    name: str, toolkit: ToolkitRun, standin_answers: dict[str, Answer], bodies: dict[str, str]
) -> None:
    want, got = toolkit.answers[name], standin_answers[name]
    story = f"\nbody: {bodies[name][:300]}\ntoolkit (transformers {toolkit.version}): {want}\nstand-in: {got}"
    assert want.status // 100 in (2, 4), f"the toolkit answered neither 2xx nor 4xx{story}"
    assert got.status // 100 == want.status // 100, f"status class differs{story}"
    if want.status // 100 != 2:
        return
    assert shape(got.body) == shape(want.body), (
        f"shape differs: toolkit {shape(want.body)}, stand-in {shape(got.body)}{story}"
    )
    expected, actual = scored(want.body), scored(got.body)
    assert [x.get("label") for x in actual] == [x.get("label") for x in expected], f"labels differ{story}"
    if expected:
        want_scores = np.array([x["score"] for x in expected], dtype=float)
        got_scores = np.array([x["score"] for x in actual], dtype=float)
        tolerance = LOGIT_TOLERANCE if '"function_to_apply": "none"' in bodies[name] else TOLERANCE
        off = np.flatnonzero(np.abs(want_scores - got_scores) > tolerance)
        assert not off.size, (
            f"{off.size} of {len(want_scores)} scores differ by more than {tolerance}: "
            + "; ".join(f"item {i}: toolkit {want_scores[i]:.9g}, stand-in {got_scores[i]:.9g}" for i in off[:5])
            + story
        )
