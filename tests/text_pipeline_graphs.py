"""What the text-pipeline tests (unit and models) share: an ONNX Runtime session with onnxruntime-extensions'
operators, and the graph's tokenizer alone as a function of one text. Imported only by modules that have
already checked, with ``pytest.importorskip``, that onnxruntime and onnxruntime-extensions are installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def session(path: Path):
    import onnxruntime as ort
    import onnxruntime_extensions as ox

    options = ort.SessionOptions()
    options.register_custom_ops_library(ox.get_library_path())
    return ort.InferenceSession(str(path), options)


def ids_session(folder: Path, tmp_path: Path) -> Callable[[str], list[int]]:
    """The graph's tokenizer alone: one text in, its ids out."""
    from onnx import TensorProto, helper

    from osrerank.pipeline_tokenizers import EXTRA_OPSETS, Builder, read_tokenizer, text_ids

    b = Builder("")
    ids = text_ids(b, read_tokenizer(folder), "text")
    graph = helper.make_graph(
        b.nodes,
        "ids",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info(ids, TensorProto.INT64, [None])],
        b.initializers,
    )
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, v) for d, v in EXTRA_OPSETS.items())]
    (tmp_path / "ids.onnx").write_bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())
    run = session(tmp_path / "ids.onnx")
    return lambda text: run.run(None, {"text": np.array([text], dtype=object)})[0].tolist()
