"""A private Python environment that can run the SageMaker Hugging Face inference toolkit's own handler.

The toolkit (``sagemaker-huggingface-inference-toolkit``) needs transformers < 5 (its handler imports
``transformers.file_utils.is_tf_available``) and ``multi-model-server`` (it imports ``mms.service``), while osrerank's
environment has transformers 5. So the contract tests run the toolkit in a venv of its own, built with
``--system-site-packages`` (torch, numpy, safetensors, boto3, Pillow... come from the system Python) and a lean
``pip install --no-deps`` of exactly what the text-classification path imports; a plain install would pull
librosa/pyctcdecode and downgrade numpy.

``toolkit_python(version)`` builds it once into ``cache_root()/venvs/sm-toolkit-<version>`` and returns its python.
A build that did not finish (no ``.complete`` stamp, or a stamp for other requirements) is removed and redone; a lock
file keeps two processes from building the same venv at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from osrerank.paths import cache_root

__all__ = ["DLC_TRANSFORMERS", "NEWEST_4X_TRANSFORMERS", "build_log", "requirements", "toolkit_python"]

#: transformers of the Hugging Face PyTorch inference DLC the SageMaker tutorial deploys (PyTorch 2.1.0, py310).
DLC_TRANSFORMERS = "4.37.0"
#: the newest transformers 4.x release on PyPI (`pip index versions transformers`; 5.0.0 followed it).
NEWEST_4X_TRANSFORMERS = "4.57.6"

#: The toolkit and what its handler imports that the system Python does not have.
TOOLKIT = (
    "sagemaker-huggingface-inference-toolkit==2.6.0",
    "sagemaker-inference==1.10.1",
    "multi-model-server==1.1.11",
    "retrying==1.4.2",
)

#: tokenizers / huggingface-hub each transformers accepts (its own Requires-Dist, which it checks again at import;
#: the system's tokenizers 0.23.3 and huggingface-hub 2.x are outside both ranges).
COMPANIONS: dict[str, tuple[str, ...]] = {
    "4.37.0": ("tokenizers>=0.14,<0.19", "huggingface-hub>=0.19.3,<1.0"),
    "4.57.6": ("tokenizers>=0.22.0,<=0.23.0", "huggingface-hub>=0.34.0,<1.0"),
}

PIP_TIMEOUT_S = 1800
LOCK_TIMEOUT_S = 3600


def requirements(transformers_version: str) -> list[str]:
    """Everything ``pip install --no-deps`` gets for this transformers version."""
    if transformers_version not in COMPANIONS:
        raise ValueError(
            f"no tokenizers/huggingface-hub pins for transformers {transformers_version}; "
            f"known: {', '.join(sorted(COMPANIONS))} (add its Requires-Dist ranges to COMPANIONS)"
        )
    return [*TOOLKIT, f"transformers=={transformers_version}", *COMPANIONS[transformers_version]]


def _venv(transformers_version: str) -> Path:
    return cache_root() / "venvs" / f"sm-toolkit-{transformers_version}"


def build_log(transformers_version: str) -> Path:
    """The pip output and timing of the last build (kept next to the venv)."""
    return _venv(transformers_version).with_name(f"sm-toolkit-{transformers_version}.build.log")


def _stamp(transformers_version: str) -> dict[str, object]:
    return {"requirements": requirements(transformers_version), "base_python": _base_python()}


def _base_python() -> str:
    """The interpreter the venv is made from: the real one, not another venv's (whose packages are not wanted)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _complete(root: Path, stamp: dict[str, object]) -> bool:
    done = root / ".complete"
    try:
        return (root / "bin" / "python").exists() and json.loads(done.read_text())["stamp"] == stamp
    except (OSError, ValueError, KeyError):
        return False


def _run(cmd: list[str], log, **kwargs) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=PIP_TIMEOUT_S, **kwargs)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed with exit code {proc.returncode}; see {log.name}")


def toolkit_python(transformers_version: str) -> Path:
    """The python of a venv holding the SageMaker HF inference toolkit 2.6.0 and ``transformers_version``."""
    stamp = _stamp(transformers_version)
    root = _venv(transformers_version)
    python = root / "bin" / "python"
    if _complete(root, stamp):
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.with_name(root.name + ".lock")
    with lock_path.open("a") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process has held {lock_path} for {LOCK_TIMEOUT_S} s") from None
                time.sleep(1)
        try:
            if _complete(root, stamp):  # built by the process we waited for
                return python
            _build(root, transformers_version, stamp)
            return python
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(root: Path, transformers_version: str, stamp: dict[str, object]) -> None:
    if root.exists() or root.is_symlink():
        shutil.rmtree(root) if root.is_dir() and not root.is_symlink() else root.unlink()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    python = root / "bin" / "python"
    started = time.monotonic()
    with build_log(transformers_version).open("w") as log:
        try:
            _run([_base_python(), "-m", "venv", "--system-site-packages", str(root)], log, env=env)
            _run(
                [str(python), "-m", "pip", "install", "--no-deps", "--no-input", *requirements(transformers_version)],
                log,
                env=env,
            )
            # The check that matters: the handler imports, and transformers accepts its tokenizers/huggingface-hub.
            check = (
                "import json, transformers, tokenizers, huggingface_hub; "
                "from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService; "
                "print(json.dumps([transformers.__version__, tokenizers.__version__, huggingface_hub.__version__]))"
            )
            log.write(f"$ {python} -c <import check>\n")
            log.flush()
            out = subprocess.run(
                [str(python), "-c", check],
                capture_output=True,
                text=True,
                timeout=600,
                env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"},
                cwd=root,
            )
            log.write(out.stdout + out.stderr)
            if out.returncode:
                raise RuntimeError(f"the toolkit venv does not import: {out.stderr.strip()[-2000:]}")
            versions = json.loads(out.stdout.strip().splitlines()[-1])
            if versions[0] != transformers_version:
                raise RuntimeError(f"the venv imports transformers {versions[0]}, not {transformers_version}")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 1)
        log.write(f"built in {seconds} s: transformers, tokenizers, huggingface-hub = {versions}\n")
    (root / ".complete").write_text(
        json.dumps({"stamp": stamp, "versions": versions, "build_seconds": seconds}, indent=1) + "\n"
    )
