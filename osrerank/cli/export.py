"""``osrerank export``: a cross-encoder as one ONNX file that scores raw text (pipeline_export.py)."""

from __future__ import annotations

from typing import Any

import click

from .common import CONTEXT, friendly_errors, out, progress, resolve_settings, settings_options


@click.command(context_settings=CONTEXT)
@click.option("--out", "target", required=True, type=click.Path(dir_okay=False), help="The ONNX file to write.")
@click.option("--sigmoid", is_flag=True, help="Output each pair's sigmoid (scores) instead of its logit (logits).")
@settings_options("model.path")
@friendly_errors
def export(target: str, sigmoid: bool, **kwargs: Any) -> None:
    """Export a cross-encoder as one self-contained ONNX file: string inputs first_input and second_input (one
    pair per position), the model's own tokenizer inside the graph, one logit (or --sigmoid score) per pair out.
    It loads with onnxruntime and onnxruntime-extensions alone, and `osrerank serve --model FILE.onnx` serves it.

    \b
    Example:
        osrerank export --model ./ms-marco-MiniLM-L-6-v2 --out reranker.onnx
    """
    from ..pipeline_export import export_pipeline

    model = resolve_settings(kwargs).model.path
    progress(f"exporting {model} (reading its tokenizer takes a few seconds)")
    result = export_pipeline(model, target, sigmoid=sigmoid)
    out.print(
        f"wrote {result.path}: {result.tokenizer} tokenizer in the graph, pairs cut at {result.max_length} tokens, "
        f"output {result.output!r}",
        highlight=False,
    )
    for note in result.notes:
        out.print(f"note: {note}", highlight=False)


COMMANDS = [export]
