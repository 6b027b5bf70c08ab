"""A cross-encoder's last layer, computed for the one token its head reads.

A BERT or XLM-R classifier reads the final hidden state of the first token only (the pooler or head takes
``[:, 0]``). The last layer still computes every token: queries, attention, the output projection, the
feed-forward block and both LayerNorms, all per token. Only the keys and values of that layer need every
token; everything else can run on the first row alone and give the same logit. That is about a seventh of a
six-layer model's multiplications and a sixth of its element-wise work (softmax, GELU).

The rewrite is one Slice: the last layer's input, cut to its first row, feeds the query projection and the
attention block's residual Add. A mask made square (batch, 1, queries, keys) by newer exporters is cut to its
first query row, and reshape targets computed from the whole layer input are computed from the row instead.
It is found by structure (the last Softmax's scores MatMul, back to the query's projection) and kept only when
the rewritten graph gives the original's logits on padded batches of random tokens (within float noise); any
other graph (a fused QKV projection, mean pooling, an exporter's own layout) is left as it is, and the verdict
is cached with the graph (``onnx/<digest>/``) so it is reached once per model file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .model import onnx_cache

__all__ = ["first_token_graph"]

log = logging.getLogger(__name__)

#: How far the rewritten graph's logits may be from the original's: float32 noise of a different
#: summation order (7.6e-6 measured on MiniLM-L6 at 128 tokens), well inside the 1e-4 exactness gate.
TOLERANCE = 3e-5
#: Shapes of the random batches the rewrite is checked on (batch, tokens), each with some rows padded, in one
#: session: ONNX Runtime 1.16-1.17 gives NaN on the cut XLM-R graph from a second call with fewer tokens than the
#: first (not with more), which the second batch catches; 1.20 and later do not.
CHECK_BATCHES = ((1, 83), (1, 81), (1, 5), (3, 19), (4, 64))
#: Bumped when the rewrite learns a new layout, so that graphs it refused before are tried again.
REWRITE_VERSION = 1
#: Graphs at least this large are saved with their weights in a side file (protobuf's 2 GB limit).
EXTERNAL_DATA_BYTES = 1 << 30


class Unfit(Exception):
    """The graph is not one the rewrite knows, or the rewritten graph scores differently: keep the original."""


def first_token_graph(onnx_file: Path) -> Path:
    """``onnx_file`` with its last layer cut to the first token, when that changes no logit; else ``onnx_file``.

    Cached: the rewritten graph, or the reason it was not made, beside the kit's other conversions of the file.
    """
    folder = onnx_cache(onnx_file)
    target, refused = folder / "model.first-token.onnx", folder / f"model.first-token-v{REWRITE_VERSION}.refused"
    if target.exists():
        return target
    if refused.exists():
        return onnx_file
    try:
        import onnx
    except ImportError:  # a core dependency: only a broken install lacks it
        return onnx_file
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"model.first-token.{os.getpid()}.tmp.onnx"  # processes loading one model may race
    large = onnx_file.stat().st_size >= EXTERNAL_DATA_BYTES
    try:
        model = onnx.load(str(onnx_file))
        _cut_last_layer(model)
        _save(onnx, model, tmp, large=large)
        _check_same_logits(onnx_file, tmp)
    except Exception as exc:  # Unfit, or a layout the rewrite trips on: either way the original graph serves
        for leftover in (tmp, tmp.with_name(tmp.name + ".data")):
            leftover.unlink(missing_ok=True)
        why = str(exc) if isinstance(exc, Unfit) else f"{type(exc).__name__}: {exc}"
        refused.write_text(f"{why}\n")
        log.info("%s: the last layer runs for every token (%s)", onnx_file, why)
        return onnx_file
    tmp.replace(target)
    log.info("%s: the last layer runs for the first token only (the one the head reads)", onnx_file)
    return target


def _save(onnx: Any, model: Any, path: Path, *, large: bool) -> None:
    if large:  # the weights beside it, under this writer's own name (kept by the rename of the graph)
        location = path.name + ".data"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=location)
    else:
        onnx.save_model(model, str(path))


def _cut_last_layer(model: Any) -> None:
    """Feed the last layer's query projection and attention residual from its input's first row (in place)."""
    _Rewrite(model).run()


#: Operators of shape arithmetic: what exporters compute reshape targets and masks' sizes with.
SHAPE_OPS = frozenset(
    {
        *("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Range", "Expand", "ConstantOfShape"),
        *("Mul", "Add", "Sub", "Div", "Equal", "Where"),
    }
)


class _Rewrite:
    """The rewrite of one graph: find the last attention, cut its queries to the first token, and make what
    sized itself from the whole sequence (reshape targets, a square attention mask) size itself from the row."""

    def __init__(self, model: Any) -> None:
        self.graph = model.graph
        self.nodes = list(self.graph.node)
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.constant = {i.name for i in self.graph.initializer} | {""}
        for node in self.nodes:  # a Constant, or what only constants feed (an Identity of a shared weight)
            if node.op_type != "Shape" and all(i in self.constant for i in node.input):
                self.constant |= set(node.output)
        self.constant.discard("")
        self.added: list[Any] = []
        self.shapes: dict[str, bool] = {}

    def computed(self, node: Any) -> list[Any]:
        """The producers of ``node``'s computed inputs (not weights, constants or shape arithmetic)."""
        names = [i for i in node.input if i and i not in self.constant and i in self.producer]
        return [self.producer[i] for i in names if not self.is_shape(i)]

    def is_shape(self, tensor: str) -> bool:
        """Whether ``tensor`` is shape arithmetic: constants and ``Shape`` outputs combined by SHAPE_OPS."""
        if tensor in self.constant or not tensor:
            return True
        if tensor not in self.shapes:
            node = self.producer.get(tensor)
            self.shapes[tensor] = (
                node is not None
                and node.op_type in SHAPE_OPS
                and (node.op_type == "Shape" or all(self.is_shape(i) for i in node.input))
            )
        return self.shapes[tensor]

    def run(self) -> None:
        softmaxes = [n for n in self.nodes if n.op_type == "Softmax"]
        if not softmaxes:
            raise Unfit("no Softmax: not an attention model")
        scores, chain = self.scores_before(softmaxes[-1])
        query = self.projection_of(scores)
        layer_input = query.input[0]
        users = [n for n in self.nodes if layer_input in n.input]
        projections = [n for n in users if n.op_type == "MatMul" and n.input[1] in self.constant]
        residuals = [n for n in users if n.op_type == "Add"]
        if len(projections) != 3 or len(residuals) != 1:
            raise Unfit(
                f"the last layer's input feeds {len(projections)} projections and {len(residuals)} Add "
                "(separate query, key and value projections and one residual expected)"
            )
        first_row = self.first_of(layer_input, axis=1)
        for node in (query, residuals[0]):
            node.input[list(node.input).index(layer_input)] = first_row
        for node, carrier in chain:  # a mask added to the scores, (batch, 1, 1 or queries, keys): its first query row
            for k, tensor in enumerate(node.input):
                if tensor != carrier and tensor not in self.constant and not self.is_shape(tensor):
                    node.input[k] = self.first_of(tensor, axis=-2)
        self.resize_from(layer_input, first_row)
        self.graph.ClearField("node")
        self.graph.node.extend(_in_order([*self.nodes, *self.added], self.graph))

    def scores_before(self, softmax: Any) -> tuple[Any, list[tuple[Any, str]]]:
        """The MatMul of queries and keys a Softmax normalizes, and the nodes from it to the Softmax (the scale,
        the mask's Add), each with the input that carries the scores."""

        def path_to_scores(node: Any, depth: int) -> list[tuple[Any, str]] | None:
            for source in self.computed(node):
                step = (node, next(i for i in node.input if i in source.output))
                if source.op_type == "MatMul" and len(self.computed(source)) == 2:
                    return [step, (source, "")]
                if depth > 0 and (rest := path_to_scores(source, depth - 1)) is not None:
                    return [step, *rest]
            return None

        path = path_to_scores(softmax, 4)
        if path is None:
            raise Unfit("the last Softmax does not follow a MatMul of queries and keys")
        return path[-1][0], path[1:-1]

    def projection_of(self, scores: Any) -> Any:
        """The query projection (a MatMul by a weight) behind the scores' first input."""
        node = self.producer.get(scores.input[0])
        for _ in range(8):  # Transpose, Reshape, the bias Add, a scale: back to the projection
            if node is None:
                break
            if node.op_type == "MatMul" and node.input[1] in self.constant:
                return node
            inputs = self.computed(node)
            if len(inputs) != 1:
                raise Unfit(f"{node.op_type} {node.name!r} on the query's path has {len(inputs)} computed inputs")
            node = inputs[0]
        raise Unfit("no query projection within 8 steps of the last attention's scores")

    def first_of(self, tensor: str, axis: int) -> str:
        """A Slice of ``tensor`` to index 0 of ``axis``; returns its output's name."""
        from onnx import helper, numpy_helper

        name = f"osrerank_first_token_{len(self.added)}"
        bounds = [numpy_helper.from_array(np.array([v], dtype=np.int64), f"{name}_{n}") for n, v in BOUNDS]
        bounds[2] = numpy_helper.from_array(np.array([axis], dtype=np.int64), f"{name}_axes")
        self.graph.initializer.extend(bounds)
        self.constant |= {b.name for b in bounds}
        self.added.append(helper.make_node("Slice", [tensor, *(b.name for b in bounds)], [name], name=name))
        return name

    def resize_from(self, layer_input: str, first_row: str) -> None:
        """Shape arithmetic read off the whole layer input, used past the cut, read off the first row instead."""
        from onnx import helper

        past = {first_row} | {o for n in self.added for o in n.output}
        for node in self.nodes:  # in graph order: a node's inputs are known before it
            if any(i in past for i in node.input):
                past |= set(node.output)
        clones: dict[str, str] = {}

        def clone(tensor: str) -> str:
            node = self.producer.get(tensor)
            if node is None or tensor in self.constant:
                return tensor
            if node.op_type == "Shape":
                if node.input[0] != layer_input:
                    return tensor
                inputs = [first_row]
            else:
                inputs = [clone(i) if i else i for i in node.input]
                if inputs == list(node.input):
                    return tensor
            if tensor not in clones:
                copy = helper.make_node(node.op_type, [], [], name=f"{node.name}_first_token")
                copy.CopyFrom(node)
                copy.name = f"{node.name}_first_token"
                copy.ClearField("input")
                copy.input.extend(inputs)
                copy.ClearField("output")
                copy.output.extend(f"{o}_first_token" for o in node.output)
                self.added.append(copy)
                clones.update({o: f"{o}_first_token" for o in node.output})
            return clones[tensor]

        for node in self.nodes:
            if not any(o in past for o in node.output):
                continue
            for k, tensor in enumerate(node.input):
                if tensor and tensor not in past and self.is_shape(tensor):
                    node.input[k] = clone(tensor)


def _in_order(nodes: list[Any], graph: Any) -> list[Any]:
    """``nodes`` in an order where each comes after the producers of its inputs (ONNX requires it)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(nodes), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise Unfit("the rewritten graph has a cycle or an input nothing produces")
        for n in ready:
            known.update(n.output)
        ordered += ready
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    return ordered


#: The Slice's starts, ends and axes: index 0 of the axis.
BOUNDS = (("starts", 0), ("ends", 1), ("axes", 1))


def _check_same_logits(original: Path, rewritten: Path) -> None:
    """Both graphs on padded batches of random tokens: the same output, within float noise."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # a rewritten graph that fails is a verdict here, not an error to print
    sessions = []
    for path in (original, rewritten):
        try:
            sessions.append(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
        except Exception as exc:  # onnxruntime raises its own types
            raise Unfit(f"ONNX Runtime cannot load the rewritten graph: {str(exc).splitlines()[0][:200]}") from exc
    names = {i.name for i in sessions[0].get_inputs()}
    rng = np.random.default_rng(0)
    for batch, length in CHECK_BATCHES:
        mask = np.ones((batch, length), dtype=np.int64)
        for row in range(1, batch):
            mask[row, int(rng.integers(2, length + 1)) :] = 0
        feed = {
            "input_ids": rng.integers(5, 1000, (batch, length)) * mask,
            "attention_mask": mask,
            "token_type_ids": np.zeros((batch, length), dtype=np.int64),
        }
        feed = {k: v for k, v in feed.items() if k in names}
        try:
            want, got = (s.run(None, feed)[0] for s in sessions)
        except Exception as exc:
            raise Unfit(f"the rewritten graph fails on a {batch} x {length} batch: {str(exc)[:200]}") from exc
        if want.shape != got.shape or not np.allclose(got, want, atol=TOLERANCE, rtol=TOLERANCE):
            raise Unfit(f"the rewritten graph's output differs on a {batch} x {length} batch")
