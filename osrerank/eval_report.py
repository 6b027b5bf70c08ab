"""The files ``osrerank eval`` writes: results.json, one TREC run per arm, and charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ToolMissingError
from .eval import MEASURES, Arm, EvalResult

__all__ = ["write_results", "write_windows"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ToolMissingError("the eval charts need: pip install 'osrerank[eval]'") from None
    return plt


def write_results(result: EvalResult, out_dir: Path) -> tuple[Path, Path]:
    """results.json, one TREC run file per arm (<arm>.run), and a PNG: metric bars and latency per arm."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "results.json", out_dir / "results.png"
    json_path.write_text(json.dumps(result.to_json(), indent=2))
    for name, arm in result.arms.items():
        (out_dir / f"{name.replace(' ', '-')}.run").write_text(arm.trec_run(name.replace(" ", "-")))
    plt = _pyplot()
    fig, (bars, lat) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(result.arms)
    for i, (name, arm) in enumerate(result.arms.items()):
        xs = [j - 0.4 + (i + 0.5) * width for j in range(len(MEASURES))]
        bars.bar(xs, [arm.metrics.get(m, 0.0) for m in MEASURES], width, label=name)
    bars.set_xticks(range(len(MEASURES)), list(MEASURES))
    bars.set_ylim(0, 1)
    bars.set_title(f"{Path(result.dataset).name} ({result.queries} queries, top-{result.top_k})")
    bars.legend(fontsize="small")
    timed = {name: arm for name, arm in result.arms.items() if arm.latencies_ms}
    lat.boxplot([arm.latencies_ms for arm in timed.values()], tick_labels=list(timed), showfliers=False)
    lat.set_yscale("log")  # BM25 answers in milliseconds, a rerank window of 100 in seconds
    lat.set_ylabel("search latency (ms, log scale)")
    lat.set_title("per-query latency (blends are computed from the two runs)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path


def write_windows(windows: dict[int, Arm], title: str, out_dir: Path) -> tuple[Path, Path]:
    """windows.json and windows.png: nDCG@10 against p50 latency (p95 as the bar's end), one point per window."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "windows.json", out_dir / "windows.png"
    rows = {w: {"metrics": arm.metrics, "latency_ms": arm.latency_summary()} for w, arm in windows.items()}
    json_path.write_text(json.dumps(rows, indent=2))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    p50 = [arm.latency_summary()["p50"] for arm in windows.values()]
    p95 = [arm.latency_summary()["p95"] for arm in windows.values()]
    ndcg = [arm.metrics["nDCG@10"] for arm in windows.values()]
    ax.errorbar(p50, ndcg, xerr=[[0] * len(p50), [b - a for a, b in zip(p50, p95, strict=True)]], fmt="o-", capsize=3)
    for w, x, y in zip(windows, p50, ndcg, strict=True):
        ax.annotate(f"window {w}", (x, y), textcoords="offset points", xytext=(6, -12), fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel("search latency p50 (ms, log scale; bar to p95)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path
