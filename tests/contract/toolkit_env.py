"""A private Python environment that can run the SageMaker Hugging Face inference toolkit's own handler.

The toolkit (``sagemaker-huggingface-inference-toolkit``) needs transformers < 5 (its handler imports
``transformers.file_utils.is_tf_available``) and ``multi-model-server`` (it imports ``mms.service``), while osrerank's
environment has transformers 5. So the contract tests run the toolkit in a venv of its own, built from declared
requirements only:

- ``toolkit-<transformers version>.txt`` next to this file: every package the toolkit's text-classification handler
  needs, pinned, as pip resolved it (``python -m tests.contract.toolkit_env lock``, see ``lock``). They go into the
  venv itself (``pip install --no-deps -r``: the file is the whole closure), so nothing the outer environment holds
  at other versions, or at the same ones, stands in for them.
- torch and numpy (what torch is built against) are NOT installed into the venv: they come from the environment
  running the tests (``sys.executable``'s site-packages, a venv's or the base interpreter's, whichever runs pytest;
  never ``sys._base_executable``'s on behalf of a venv). The venv is made without ``--system-site-packages``; a
  ``.pth`` file appends that environment's site-packages directories after the venv's own, so the pinned
  transformers/tokenizers/huggingface-hub shadow the outer ones while ``import torch`` finds the outer torch.
- pip's resolver then checks the result (``pip install --dry-run``, nothing installed): first on the venv alone,
  where nothing but numpy may be missing (so a package left out of the file fails the build, whatever the outer
  environment holds), then with the outer environment appended, where the pins plus the outer torch and numpy at
  their installed versions must leave nothing to install (the pins fit the outer numpy, and do not shadow a package
  torch needs with a version it does not accept). Either failure names the packages and how to regenerate the file.

The toolkit itself is in the file, but the closure is resolved from its requirements, not from it: its declared
``librosa``, ``pyctcdecode`` and ``phonemizer`` serve its audio tasks only, and pyctcdecode requires numpy < 2 (it
would replace the numpy torch is built against). The rest of its Requires-Dist (sagemaker-inference, huggingface_hub,
retrying, numpy, Pillow) and its ``mms`` extra (multi-model-server, retrying), with transformers, are the roots.

``toolkit_python(version)`` builds it once into ``cache_root()/venvs/sm-toolkit-<version>-<key>`` (``key``: the
running environment, so a venv and the base interpreter do not rebuild each other's) and returns its python. A build
that did not finish (no ``.complete`` stamp, or a stamp for another pinned file, interpreter, torch or numpy) is
removed and redone; a lock file keeps two processes from building the same venv at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from osrerank.paths import cache_root

__all__ = [
    "DLC_TRANSFORMERS",
    "NEWEST_4X_TRANSFORMERS",
    "build_log",
    "lock",
    "pinned_file",
    "requirements",
    "toolkit_python",
]

#: transformers of the Hugging Face PyTorch inference DLC the SageMaker tutorial deploys (PyTorch 2.1.0, py310).
DLC_TRANSFORMERS = "4.37.0"
#: the newest transformers 4.x release on PyPI (`pip index versions transformers`; 5.0.0 followed it).
NEWEST_4X_TRANSFORMERS = "4.57.6"

#: The toolkit. Installed by itself (--no-deps): its declared ``AUDIO_ONLY`` requirements are left out.
TOOLKIT = "sagemaker-huggingface-inference-toolkit==2.6.0"
#: The toolkit's declared requirements that serve its audio tasks only; pyctcdecode needs numpy < 2, which would
#: replace the numpy torch is built against.
AUDIO_ONLY = ("librosa", "pyctcdecode", "phonemizer")
#: The toolkit's extras the handler needs: ``mms`` (multi-model-server; the handler imports ``mms.service``).
TOOLKIT_EXTRAS = ("mms",)
#: Held at these versions on top of what the toolkit asks (sagemaker-inference>=1.8.0, multi-model-server>=1.1.4).
PINNED_ROOTS = ("sagemaker-inference==1.10.1", "multi-model-server==1.1.11")
#: Taken from the running environment, never installed into the toolkit's venv.
SHARED = ("torch", "numpy")
#: The .pth file in the venv's site-packages that appends the running environment's site-packages.
OUTER_PTH = "_osrerank_outer_site.pth"

PIP_TIMEOUT_S = 1800
LOCK_TIMEOUT_S = 3600


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_file(transformers_version: str) -> Path:
    """The committed pins for this transformers version."""
    return Path(__file__).with_name(f"toolkit-{transformers_version}.txt")


def requirements(transformers_version: str) -> list[str]:
    """The pinned requirements (``name==version``) the venv gets for this transformers version."""
    path = pinned_file(transformers_version)
    if not path.is_file():
        raise ValueError(
            f"no pinned requirements for transformers {transformers_version} ({path.name} is missing); "
            f"generate them with: python -m tests.contract.toolkit_env lock {transformers_version}"
        )
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


# ------------------------------------------------------------------------------------------------ the outside


def _shared() -> dict[str, dict[str, str]]:
    """torch and numpy of the running environment: version and the site-packages directory holding each."""
    found = {}
    for name in SHARED:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(
                f"{name} is not installed in the running environment ({sys.executable}); the toolkit venv takes it "
                "from there (install osrerank's dev extras: pip install -e '.[dev]')"
            ) from None
        found[name] = {"version": dist.version, "site": str(Path(dist.locate_file("")).resolve())}
    return found


def _outer_dirs(shared: dict[str, dict[str, str]]) -> list[str]:
    """The running environment's site-packages (and wherever its torch/numpy live), for the venv's .pth file."""
    paths = sysconfig.get_paths()
    dirs = [paths["purelib"], paths["platlib"], *(info["site"] for info in shared.values())]
    out: list[str] = []
    for d in dirs:
        resolved = str(Path(d).resolve())
        if Path(resolved).is_dir() and resolved not in out:
            out.append(resolved)
    return out


def _pip_env() -> dict[str, str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    for name in ("PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV", "PIP_CONSTRAINT", "PIP_NO_DEPS", "PIP_TARGET"):
        env.pop(name, None)
    return env


# ------------------------------------------------------------------------------------------------ the pins


def _toolkit_requires(requires_dist: list[str]) -> list[str]:
    """Of the toolkit's Requires-Dist, what its text-classification handler needs: the unconditional requirements
    and those of ``TOOLKIT_EXTRAS``, without ``AUDIO_ONLY``; markers evaluated here."""
    from packaging.requirements import Requirement

    out: list[str] = []
    for line in requires_dist:
        req = Requirement(line)
        if _canonical(req.name) in AUDIO_ONLY:
            continue
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", *TOOLKIT_EXTRAS)):
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        spec = f"{req.name}{extras}{req.specifier}"
        if spec not in out:
            out.append(spec)
    return out


def _would_install(python: str, args: list[str], log=None) -> list[dict]:
    """What ``pip install --dry-run`` with ``args`` would install (pip's resolver, nothing installed)."""
    with tempfile.TemporaryDirectory(prefix="sm-toolkit-pip-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [python, "-m", "pip", "install", "--dry-run", "--no-input", "--report", str(report), *args]
        if log is None:
            subprocess.run([*cmd, "--quiet"], check=True, env=_pip_env(), timeout=PIP_TIMEOUT_S)
        else:
            _run(cmd, log, env=_pip_env())
        return json.loads(report.read_text())["install"]


def _pins(items: list[dict]) -> list[str]:
    return [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items]


def lock(transformers_version: str) -> Path:
    """Resolve the toolkit's text-classification closure for ``transformers_version`` with pip and write the pins.

    The roots are ``PINNED_ROOTS``, the toolkit's own requirements (``_toolkit_requires`` of its Requires-Dist) and
    ``transformers==<version>``; ``pip install --dry-run --ignore-installed --report`` resolves them with numpy held
    at the running environment's version (what the venv will see). numpy is then left out of the file and the
    toolkit put in. Needs network (PyPI), installs nothing.
    """
    shared = _shared()
    (toolkit_item,) = _would_install(sys.executable, ["--ignore-installed", "--no-deps", TOOLKIT])
    roots = [
        *PINNED_ROOTS,
        *_toolkit_requires(toolkit_item["metadata"].get("requires_dist", [])),
        f"transformers=={transformers_version}",
    ]
    with tempfile.TemporaryDirectory(prefix="sm-toolkit-lock-") as tmp:
        constraints = Path(tmp) / "shared.txt"
        constraints.write_text("".join(f"{name}=={info['version']}\n" for name, info in shared.items()))
        items = _would_install(sys.executable, ["--ignore-installed", "-c", str(constraints), *roots])
    resolved = {_canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
    if "torch" in resolved:
        raise RuntimeError(f"the toolkit's closure for transformers {transformers_version} pulls torch; it must not")
    for name in SHARED:
        resolved.pop(name, None)
    toolkit = _canonical(TOOLKIT.split("==")[0])
    if toolkit in resolved:
        raise RuntimeError(f"{toolkit} came into the closure through {roots}; it must be installed on its own")
    numpy = shared["numpy"]["version"]
    python = ".".join(map(str, sys.version_info[:3]))
    header = [
        f"# The SageMaker Hugging Face inference toolkit with transformers {transformers_version}: everything its",
        "# text-classification handler needs, pinned. Generated; regenerate from the repository root (needs PyPI):",
        f"#     python -m tests.contract.toolkit_env lock {transformers_version}",
        f"# which resolves these with pip (Python {python}, numpy held at {numpy}, the running environment's):",
        f"#     {' '.join(roots)}",
        "# tests/contract/toolkit_env.py installs the file with --no-deps (it is the whole closure) and checks it with",
        "# pip's resolver. Not here: torch and numpy (taken from the environment running the tests), and the",
        "# toolkit's audio-only librosa/pyctcdecode/phonemizer (pyctcdecode needs numpy<2).",
    ]
    pins = [TOOLKIT, *(f"{name}=={resolved[name]}" for name in sorted(resolved))]
    path = pinned_file(transformers_version)
    path.write_text("\n".join([*header, *pins]) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ the venv


def _key() -> str:
    """The running environment, in the venv's name: another environment gets (and may rebuild) its own."""
    return hashlib.sha256(str(Path(sys.prefix).resolve()).encode()).hexdigest()[:10]


def _venv(transformers_version: str) -> Path:
    return cache_root() / "venvs" / f"sm-toolkit-{transformers_version}-{_key()}"


def build_log(transformers_version: str) -> Path:
    """The pip output and timing of the last build (kept next to the venv)."""
    root = _venv(transformers_version)
    return root.with_name(f"{root.name}.build.log")


def _stamp(transformers_version: str) -> dict[str, object]:
    shared = _shared()
    return {
        "pinned": {
            "file": pinned_file(transformers_version).name,
            "sha256": hashlib.sha256("\n".join(requirements(transformers_version)).encode()).hexdigest(),
        },
        "outer_python": sys.executable,
        "outer_prefix": sys.prefix,
        "outer_site": _outer_dirs(shared),
        "shared": {name: info["version"] for name, info in shared.items()},
    }


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
        log.flush()
        errors = [line for line in Path(log.name).read_text().splitlines()[-40:] if line.startswith(("ERROR", "  "))]
        raise RuntimeError(
            f"{' '.join(cmd[:4])}... failed with exit code {proc.returncode}; see {log.name}\n"
            + "\n".join(errors[-12:])
        )


def toolkit_python(transformers_version: str) -> Path:
    """The python of a venv holding the SageMaker HF inference toolkit 2.6.0 and ``transformers_version``."""
    stamp = _stamp(transformers_version)
    root = _venv(transformers_version)
    python = root / "bin" / "python"
    if _complete(root, stamp):
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.with_name(root.name + ".lock")
    with lock_path.open("a") as lock_file:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
            fcntl.flock(lock_file, fcntl.LOCK_UN)


#: Run by the venv's python once built: versions, where torch/numpy come from, and sys.path.
IMPORT_CHECK = """
import json, sys, numpy, tokenizers, torch, transformers, huggingface_hub
from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService
print(json.dumps({
    "versions": [transformers.__version__, tokenizers.__version__, huggingface_hub.__version__],
    "files": {"torch": torch.__file__, "numpy": numpy.__file__, "transformers": transformers.__file__},
    "sys_path": sys.path,
}))
"""


def _site_packages(root: Path) -> Path:
    found = sorted(root.glob("lib/python*/site-packages"))
    if len(found) != 1:
        raise RuntimeError(f"expected one site-packages under {root}/lib, found {found}")
    return found[0]


def _build(root: Path, transformers_version: str, stamp: dict[str, object]) -> None:
    if root.exists() or root.is_symlink():
        shutil.rmtree(root) if root.is_dir() and not root.is_symlink() else root.unlink()
    env = _pip_env()
    python = root / "bin" / "python"
    shared = _shared()
    outer = _outer_dirs(shared)
    pins = requirements(transformers_version)
    pinned = pinned_file(transformers_version)
    started = time.monotonic()
    with build_log(transformers_version).open("w") as log:
        try:
            log.write(f"outer environment: {sys.executable} (prefix {sys.prefix}); site: {outer}\n")
            log.write(f"shared from it: {json.dumps(shared)}\n")
            # 1. An empty venv (no system site-packages) gets exactly the pinned closure.
            _run([sys.executable, "-m", "venv", str(root)], log, env=env)
            site = _site_packages(root)
            _run([str(python), "-m", "pip", "install", "--no-input", "--no-deps", "-r", str(pinned)], log, env=env)
            mine = {_canonical(d.metadata["Name"]) for d in importlib.metadata.distributions(path=[str(site)])}
            if leaked := sorted(mine & set(SHARED)):
                raise RuntimeError(f"{leaked} got installed into the toolkit venv; they must come from outside")
            # What venv put there besides pip (setuptools 65 on Python 3.11) is no pin: it would shadow the outer
            # copy torch requires (this torch: setuptools>=77.0.3).
            if extra := sorted(mine - {_canonical(p.split("==")[0]) for p in pins} - {"pip"}):
                _run([str(python), "-m", "pip", "uninstall", "--yes", *extra], log, env=env)
            # 2. pip's resolver, seeing the venv alone: the pins without the toolkit (whose AUDIO_ONLY requirements
            #    are left out on purpose) and what the toolkit requires otherwise, numpy held at the outer version.
            #    Only numpy may be missing: a pin missing from the file fails here, whatever the outside holds.
            (toolkit_dist,) = importlib.metadata.distributions(name=TOOLKIT.split("==")[0], path=[str(site)])
            check = [p for p in pins if not p.startswith(TOOLKIT.split("==")[0] + "==")]
            check += _toolkit_requires(toolkit_dist.requires or [])
            check_file = root / "resolve-check.txt"
            check_file.write_text("\n".join(check) + "\n")
            constraints = root / "resolve-shared.txt"
            constraints.write_text("".join(f"{name}=={info['version']}\n" for name, info in shared.items()))
            wanted = _would_install(str(python), ["-r", str(check_file), "-c", str(constraints)], log)
            if missing := _pins([i for i in wanted if _canonical(i["metadata"]["name"]) not in SHARED]):
                raise RuntimeError(
                    f"{pinned.name} is incomplete: pip's resolver would still install {missing} into the toolkit "
                    f"venv; regenerate it with: python -m tests.contract.toolkit_env lock {transformers_version}"
                )
            # 3. The running environment's site-packages after the venv's own: torch and numpy from there.
            (site / OUTER_PTH).write_text(
                "# the environment running osrerank's tests (torch, numpy); after this venv's own packages\n"
                + "".join(f"{d}\n" for d in outer)
            )
            #    pip's resolver again, now seeing the outside too, with torch and numpy at their installed versions:
            #    nothing to install (the venv's pins do not break torch's requirements, nor numpy the pins').
            shared_pins = [f"{name}=={info['version']}" for name, info in shared.items()]
            if wanted := _would_install(str(python), ["-r", str(check_file), *shared_pins], log):
                raise RuntimeError(
                    f"pip's resolver would still install {_pins(wanted)} into the toolkit "
                    f"venv: {pinned.name} does not fit the running environment's torch/numpy ({shared}); regenerate "
                    f"it with: python -m tests.contract.toolkit_env lock {transformers_version}"
                )
            # 4. The check that matters: the handler imports, transformers accepts its tokenizers/huggingface-hub,
            #    torch and numpy are the outer ones, and no other site-packages is on the path.
            log.write(f"$ {python} -c <import check>\n")
            log.flush()
            out = subprocess.run(
                [str(python), "-c", IMPORT_CHECK],
                capture_output=True,
                text=True,
                timeout=600,
                env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"},
                cwd=root,
            )
            log.write(out.stdout + out.stderr)
            if out.returncode:
                raise RuntimeError(f"the toolkit venv does not import: {out.stderr.strip()[-2000:]}")
            found = json.loads(out.stdout.strip().splitlines()[-1])
            versions = found["versions"]
            if versions[0] != transformers_version:
                raise RuntimeError(f"the venv imports transformers {versions[0]}, not {transformers_version}")
            if not Path(found["files"]["transformers"]).resolve().is_relative_to(site.resolve()):
                raise RuntimeError(f"the venv imports transformers from {found['files']['transformers']}")
            for name in SHARED:
                if not Path(found["files"][name]).resolve().is_relative_to(shared[name]["site"]):
                    raise RuntimeError(
                        f"the venv imports {name} from {found['files'][name]}, not {shared[name]['site']}"
                    )
            allowed = {str(site.resolve()), *outer}
            strays = [
                p
                for p in found["sys_path"]
                if re.search(r"[/\\](site|dist)-packages([/\\]|$)", p) and str(Path(p).resolve()) not in allowed
            ]
            if strays:
                raise RuntimeError(
                    f"the toolkit venv has site-packages on its path besides its own and {outer}: {strays}"
                )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 1)
        log.write(f"built in {seconds} s: transformers, tokenizers, huggingface-hub = {versions}\n")
    (root / ".complete").write_text(
        json.dumps(
            {"stamp": stamp, "versions": versions, "sys_path": found["sys_path"], "build_seconds": seconds}, indent=1
        )
        + "\n"
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "lock":
        sys.exit("usage: python -m tests.contract.toolkit_env lock [TRANSFORMERS_VERSION ...]")
    for version in args[1:] or [DLC_TRANSFORMERS, NEWEST_4X_TRANSFORMERS]:
        print(lock(version))
