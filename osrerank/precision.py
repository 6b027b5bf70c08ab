"""Precision modes: the one table of what each mode is and where it runs, the one place its refusals are
written, and the one decision of which mode a model runs in.

The decision is made where the model is loaded to serve (the stand-in at start, the in-cluster target when it
packages the graph, an in-process scorer) and nowhere else; its result (mode, why, figures) is what
``osrerank setup`` reports and the stand-in's ``/ping`` shows. A mode is judged by the fidelity gate (gate.py)
against fp32; ``auto`` gates every candidate this CPU and host can run, times fp32 and those that pass, and
takes the fastest (a reduced mode only when it beats fp32 by ``FASTER_BY``). Speed is measured, not assumed:
on an AVX512-BF16 CPU without AMX, OpenVINO bf16 passed the gate and ran at 0.64x OpenVINO f32.

Adding a mode is one entry in ``MODES`` (its engine, its graph, what it needs of the CPU, where it runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .cpu import CpuInfo, cpu_info
from .errors import ConfigError, ToolMissingError
from .gate import gate_data, measured_fidelity, measured_relevance, measured_speed
from .model import quantized

__all__ = ["FASTER_BY", "MODES", "Decision", "Host", "ModeSpec", "choose", "refusal"]

#: Where a model runs: the kit's own scorer (stand-in, TorchServe handler, in-process), ml-commons' ONNX
#: Runtime CPU engine inside OpenSearch, or a server that is neither (SageMaker's DLC, a given endpoint).
Host = Literal["kit", "ml-commons", "other"]
# auto leaves fp32 only for a mode at least this much faster: a timing on a busy machine varies by a few percent
FASTER_BY = 1.1


def _needs_bf16(cpu: CpuInfo) -> str | None:
    if cpu.bf16:
        return None
    return (
        f"this CPU ({cpu.model}) has no bf16 dot products (AVX512-BF16 or AMX): bf16 would run as f32 "
        "and gain nothing; use --precision fp32, int8 or auto"
    )


def _needs_simd(cpu: CpuInfo) -> str | None:
    if {"avx2", "avx512f"} & cpu.flags:
        return None
    return f"this CPU ({cpu.model}) has neither AVX2 nor AVX-512: int8 would be slower than fp32; use fp32"


@dataclass(frozen=True)
class ModeSpec:
    """One way to run a graph: on which engine (with which precision hint), on which form of the graph, whether
    it claims fp32's scores, what it needs of the CPU, where it can run, and whether users can ask for it by
    name (``auto`` considers every mode but fp32 as a candidate)."""

    name: str
    engine: Literal["onnxruntime", "openvino"]
    hint: str = "f32"
    graph: Callable[[Path], Path] = field(default=lambda onnx_file: onnx_file)
    exact: bool = False
    needs: Callable[[CpuInfo], str | None] = field(default=lambda cpu: None)
    hosts: frozenset[str] = frozenset({"kit"})
    selectable: bool = True
    #: (Python modules, the extra that installs them) the mode cannot run without
    requires: tuple[tuple[str, ...], str] | None = None
    #: the graph is quantized on calibration pairs (calibrated.py) instead of by ``graph``
    calibrated: bool = False

    def missing(self) -> str | None:
        """What to install for this mode, or None when it can load."""
        if self.requires is None:
            return None
        modules, extra = self.requires
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError:
                return f"--precision {self.name} needs {module}: pip install 'osrerank[{extra}]'"
        return None


MODES: dict[str, ModeSpec] = {
    m.name: m
    for m in (
        ModeSpec("fp32", "onnxruntime", exact=True, hosts=frozenset({"kit", "ml-commons"})),
        # bf16: only where the CPU has bf16 dot products; elsewhere OpenVINO would quietly compute in f32
        ModeSpec("bf16", "openvino", hint="bf16", needs=_needs_bf16, requires=(("openvino",), "openvino")),
        # int8: weights per channel, activations quantized at run time (1.5x fp32 on SciFact passages, 2 Zen 3
        # cores; it moves scores, so only through the gate)
        ModeSpec(
            "int8",
            "onnxruntime",
            graph=quantized,
            needs=_needs_simd,
            hosts=frozenset({"kit", "ml-commons"}),
            requires=(("onnx",), "int8"),
        ),
        # int8-static: every product int8 (VNNI, AMX-INT8), ranges calibrated once on the gate's pairs (NNCF);
        # the head and NNCF's transformer-sensitive parts stay fp32
        ModeSpec(
            "int8-static",
            "openvino",
            needs=_needs_simd,
            requires=(("nncf", "openvino"), "int8"),
            calibrated=True,
        ),
        # the same fp32 arithmetic on OpenVINO: auto takes it when it is installed, exact and faster
        ModeSpec("fp32-openvino", "openvino", exact=True, selectable=False, requires=(("openvino",), "openvino")),
    )
}
#: What ``--precision`` accepts.
PRECISIONS = ("auto", *(name for name, m in MODES.items() if m.selectable))


def refusal(asked: str, host: Host, cpu: CpuInfo, where: str) -> str | None:
    """Why ``asked`` (a mode or ``auto``) cannot run on ``host`` on this CPU, or None. ``where`` names the place
    for the message ("the sagemaker target", "a given --endpoint-url"). Cheap: nothing is loaded."""
    if asked == "fp32":
        return None
    if host == "other":
        return (
            f"--precision {asked} cannot apply to {where}: only the standin and opensearch targets run the kit's scorer"
        )
    if asked == "auto":
        return None
    mode = MODES[asked]
    if host not in mode.hosts:
        can = ", ".join(n for n, m in MODES.items() if host in m.hosts and m.selectable)
        return (
            f"--precision {asked} cannot run inside OpenSearch ({where}): ml-commons runs ONNX Runtime's CPU provider, "
            f"which runs {can} only. Use --precision int8 or auto (int8 when it keeps the ranking), or the standin "
            "target"
        )
    why = mode.needs(cpu)
    return f"--precision {asked}: {why}" if why else None


@dataclass(frozen=True)
class Decision:
    """The mode a model runs in, and why: what the CLI reports and ``/ping`` shows (``figures``: each mode's
    gate figures, and the speeds when ``auto`` timed any)."""

    mode: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


Score = Callable[[list[tuple[str, str]]], np.ndarray]


def _lazily(build: Callable[[str], Score], mode: str) -> Score:
    """``build(mode)``'s score function, loaded on its first call: a cached gate result needs no model."""
    made: list[Score] = []

    def score(pairs: list[tuple[str, str]]) -> np.ndarray:
        if not made:
            made.append(build(mode))
        return made[0](pairs)

    return score


def choose(
    asked: str,
    host: Host,
    key: Callable[[], Sequence[str]],
    build: Callable[[str], Score],
    gate_pairs: str | None = None,
    gate_qrels: str | None = None,
) -> Decision:
    """The mode to run in. ``build(mode)`` loads the model in that mode and returns its raw-score function; it
    is called only when something must be measured (every result is remembered). ``key()`` names the model (its
    graph's digest, kind, max length); it is asked only after the cheap refusals. Asked for a mode, it is refused
    (ConfigError with the figures) unless it passes the gate; for ``auto``, every candidate this host and CPU can
    run is gated, and the fastest that passes is taken. With ``gate_qrels`` (judged queries) a mode must keep
    nDCG@10 too, and the ranking gate runs on those queries' candidates unless ``gate_pairs`` names others."""
    cpu = cpu_info()
    why = refusal(asked, host, cpu, "this host")
    if why:
        raise ConfigError(why)
    if asked == "fp32":
        return Decision("fp32", "asked for")
    data = gate_data(gate_pairs, gate_qrels)
    source, groups, judged = data.source, data.groups, data.judged
    model_key = list(key())
    flags = ",".join(sorted(cpu.flags))
    references: dict[int, np.ndarray] = {}
    exact = _lazily(build, "fp32")

    def reference(pairs: list[tuple[str, str]]) -> np.ndarray:  # each gate's fp32 scores are computed once
        if hash(tuple(pairs)) not in references:
            references[hash(tuple(pairs))] = exact(pairs)
        return references[hash(tuple(pairs))]

    candidates = [asked] if asked != "auto" else [n for n, m in MODES.items() if n != "fp32" and host in m.hosts]
    notes: list[str] = []
    figures: dict[str, Any] = {}
    passed: dict[str, Score] = {}
    for name in candidates:
        mode = MODES[name]
        unmet = mode.needs(cpu)
        if unmet:
            notes.append(f"{name}: {unmet.split(':')[0]}")
            continue
        missing = mode.missing()
        if missing:
            if asked != "auto":
                raise ToolMissingError(missing)
            notes.append(f"{name}: not installed ({missing.split(': ')[-1]})")
            continue
        score = _lazily(build, name)
        result = measured_fidelity([*model_key, name, flags], groups, score, reference)
        failures, shown = result.failures(exact=mode.exact), result.shown()
        if judged and not failures:  # relevance costs more: judged only what keeps the ranking
            relevance = measured_relevance([*model_key, name, flags], judged, score, reference)
            failures, shown = relevance.failures(), f"{shown}; {relevance.shown()}"
            figures.setdefault("ndcg10", {"fp32": round(relevance.ndcg10_fp32, 4)})[name] = round(relevance.ndcg10, 4)
        figures[name] = shown
        if not failures:
            if asked != "auto":
                return Decision(name, f"{name} passed the fidelity gate on {source}: {shown}", figures)
            passed[name] = score
            notes.append(f"{name} passed the fidelity gate on {source} ({shown})")
            continue
        if asked != "auto":
            raise ConfigError(
                f"--precision {name} changes the ranking too much on {source}: {'; '.join(failures)} "
                f"({shown}). Use --precision fp32 (exact) or auto."
            )
        notes.append(f"{name} failed the fidelity gate ({'; '.join(failures)})")
    if not passed:
        return Decision("fp32", f"auto picked fp32 (exact): {'; '.join(notes)}", figures)
    speeds = {"fp32": measured_speed([*model_key, "fp32", flags], groups, exact)}
    for name, score in passed.items():
        speeds[name] = measured_speed([*model_key, name, flags], groups, score)
    figures["pairs_per_s"] = {m: round(v, 1) for m, v in speeds.items()}
    timed = "timed here, pairs/s: " + ", ".join(f"{m} {v:.1f}" for m, v in speeds.items())
    best = max(passed, key=lambda m: speeds[m])
    if speeds[best] >= FASTER_BY * speeds["fp32"]:
        return Decision(best, f"auto picked {best}, the fastest ({timed}); {'; '.join(notes)}", figures)
    return Decision(
        "fp32",
        f"auto picked fp32 (exact): nothing that passed is {FASTER_BY}x faster ({timed}); {'; '.join(notes)}",
        figures,
    )
