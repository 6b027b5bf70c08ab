"""The files ``osrerank eval`` writes: results.json, one TREC run per arm, and a chart."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ToolMissingError
from .eval import MEASURES, EvalResult

__all__ = ["write_report"]


def write_report(result: EvalResult, out_dir: Path) -> tuple[Path, Path]:
    """results.json, one TREC run file per arm (<arm>.run), and a PNG: metric bars and latency per arm."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "results.json", out_dir / "results.png"
    json_path.write_text(json.dumps(result.to_json(), indent=2))
    for name, arm in result.arms.items():
        (out_dir / f"{name}.run").write_text(arm.trec_run(name))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ToolMissingError("the eval chart needs: pip install 'osrerank[eval]'") from None
    fig, (bars, lat) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    for i, (name, arm) in enumerate(result.arms.items()):
        xs = [j + (i - 0.5) * width for j in range(len(MEASURES))]
        bars.bar(xs, [arm.metrics.get(m, 0.0) for m in MEASURES], width, label=name)
    bars.set_xticks(range(len(MEASURES)), list(MEASURES))
    bars.set_ylim(0, 1)
    bars.set_title(f"{Path(result.dataset).name} ({result.queries} queries, top-{result.top_k})")
    bars.legend()
    lat.boxplot([arm.latencies_ms for arm in result.arms.values()], tick_labels=list(result.arms), showfliers=False)
    lat.set_yscale("log")  # BM25 answers in milliseconds, a rerank window of 100 in seconds
    lat.set_ylabel("search latency (ms, log scale)")
    lat.set_title("per-query latency")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path
