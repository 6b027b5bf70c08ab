"""``osrerank export``: a cross-encoder as one self-contained ONNX file that scores raw text (seed 000's ONNX
reranking pipeline): string inputs ``first_input`` and ``second_input`` (1-D, equal length, one pair per
position), the folder's tokenizer inside the graph (pipeline_tokenizers.py), and one float per pair out
(``logits``, or with ``sigmoid`` their sigmoid, ``scores``). Loading it needs onnxruntime and
onnxruntime-extensions only::

    so = ort.SessionOptions(); so.register_custom_ops_library(onnxruntime_extensions.get_library_path())
    sess = ort.InferenceSession("reranker.onnx", so)
    sess.run(None, {"first_input": np.array(["hi", "halloween"]), "second_input": np.array(["hi", "hello"])})

The graph: a Loop tokenizes the 2N texts one at a time (each kept to the pair's token budget, with its full
length); standard ops then cut each pair as ``tokenizers``' ``longest_first`` does, lay it out by the
tokenizer's pair template ([CLS] A [SEP] B [SEP] with token types for BERT, <s> A </s></s> B </s> for XLM-R),
pad the batch to its longest pair, and feed the model's own graph (the folder's ONNX or the kit's export of its
weights), whose first output's one logit per pair comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError, ToolMissingError
from .kinds import KINDS, kind_of
from .kinds.text_pipeline import INPUTS, META
from .model import resolve_model_dir
from .pipeline_tokenizers import EXTRA_OPSETS, Builder, TokenizerSpec, read_tokenizer, text_ids

__all__ = ["INPUTS", "META", "ExportResult", "export_pipeline", "pair_template"]

PREFIX = "osrerank/"
MAX_PROTO = 2**31 - 1  # one protobuf: larger models would need an external data file
ONE_PAIR_MESSAGE = "first_input and second_input must each hold at least one text"
EQUAL_MESSAGE = "first_input and second_input must hold the same number of texts"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    tokenizer: str
    max_length: int
    output: str
    notes: list[str] = field(default_factory=list)


def export_pipeline(model: str | Path, out: str | Path, *, sigmoid: bool = False) -> ExportResult:
    """Write ``model``'s (a cross-encoder folder or hub id) text pipeline to ``out``. ModelLoadError for a model
    it cannot reproduce (decoder and bi-encoder kinds, unsupported tokenizers), each in one line."""
    try:
        import onnx
        import onnxruntime_extensions  # noqa: F401  (the file needs it to load; checked before the work)
    except ImportError:
        raise ToolMissingError("exporting a text pipeline needs: pip install 'osrerank[export]'") from None
    folder = resolve_model_dir(model)
    kind = kind_of("auto", folder)
    if kind != "cross-encoder":
        raise ModelLoadError(f"{folder} is a {kind} model: a text pipeline is made of cross-encoders only")
    encoder = KINDS["cross-encoder"](folder)  # refuses an embedding model (no classification head)
    max_length = int(min(x for x in encoder.limits() if isinstance(x, int) and x > 0))
    spec = read_tokenizer(folder)
    template = pair_template(spec.document)
    added = sum(len(ids) for what, ids, _ in template if what == "special")
    graph_file = encoder.own_graph()  # the file may run on any ONNX Runtime: not the kit's rewrite
    inner = onnx.load(str(graph_file))
    opset = next((o.version for o in inner.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise ModelLoadError(f"{graph_file} is ONNX opset {opset}: the text pipeline needs opset 13 or later")
    pad = int(encoder.config.get("pad_token_id", 0) or 0)
    out_name = "scores" if sigmoid else "logits"
    pipeline = _assemble(inner, spec, template, max_length - added, pad, out_name, sigmoid)
    meta = {
        "pipeline": "text-pair",
        "max_length": str(max_length),
        "activation": "sigmoid" if sigmoid else "none",
        "label": encoder.label,
        "tokenizer": spec.family,
        "source": folder.name,
    }
    onnx.helper.set_model_props(pipeline, {META + k: v for k, v in meta.items()})
    size = pipeline.ByteSize()
    if size > MAX_PROTO:
        raise ModelLoadError(
            f"{folder}'s pipeline would be {size / 2**30:.1f} GiB: one ONNX file holds at most 2 GiB (larger models "
            "need an external data file, which is not one self-contained file)"
        )
    target = Path(out).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(pipeline, str(target))
    return ExportResult(target, spec.family, max_length, out_name, _notes(spec))


def _notes(spec: TokenizerSpec) -> list[str]:
    notes = []
    if not spec.drops_nul and not spec.nul:
        notes.append("a NUL character is dropped in the graph, where this tokenizer reads it as a character")
    if spec.nul_ids:
        notes.append(
            "a NUL right before a contraction (\\x00's): the graph reads 's as one token, this tokenizer ' and s"
        )
    if spec.composes:
        notes.append("the tokenizer's NFC/NFKC composition of a letter and a separate accent is not done in the graph")
    if spec.family == "Unigram":
        notes.append(
            "where two segmentations score exactly alike ('000': '0','00' or '00','0') SentencePiece picks "
            "the other one"
        )
    return notes


def pair_template(document: dict) -> list[tuple[str, list[int], int]]:
    """How the tokenizer lays out a pair: ("special", ids, type) and ("A"/"B", [], type) items, in order."""
    processor = document.get("post_processor") or {}
    if processor.get("type") == "Sequence":
        processor = next(
            (
                p
                for p in processor.get("processors", [])
                if p.get("type") in ("TemplateProcessing", "BertProcessing", "RobertaProcessing")
            ),
            {},
        )
    kind = processor.get("type")
    if kind == "BertProcessing":
        cls, sep = processor["cls"][1], processor["sep"][1]
        return [("special", [cls], 0), ("A", [], 0), ("special", [sep], 0), ("B", [], 1), ("special", [sep], 1)]
    if kind == "RobertaProcessing":
        cls, sep = processor["cls"][1], processor["sep"][1]
        return [("special", [cls], 0), ("A", [], 0), ("special", [sep, sep], 0), ("B", [], 0), ("special", [sep], 0)]
    if kind != "TemplateProcessing":
        raise ModelLoadError(f"the tokenizer's post-processor is {kind or 'missing'}: it must lay out pairs")
    specials = processor.get("special_tokens", {})
    items: list[tuple[str, list[int], int]] = []
    for piece in processor["pair"]:
        if "SpecialToken" in piece:
            token = piece["SpecialToken"]
            items.append(("special", list(specials[token["id"]]["ids"]), int(token["type_id"])))
        else:
            items.append((piece["Sequence"]["id"], [], int(piece["Sequence"]["type_id"])))
    return items


def _assemble(inner: Any, spec: TokenizerSpec, template: list, budget: int, pad: int, out: str, sigmoid: bool) -> Any:
    """The pipeline model: tokenizing Loop, truncation, pair layout, the model graph, the output."""
    from onnx import TensorProto, helper

    b = Builder(PREFIX)
    checked = b.op("Reshape", [INPUTS[0], b.op("Shape", [INPUTS[1]])], node_name=EQUAL_MESSAGE)
    texts = b.op("Concat", [checked, INPUTS[1]], axis=0)
    first = b.op("Gather", [texts, b.const([0])], node_name=ONE_PAIR_MESSAGE)  # fails on no text at all
    trips = b.op("Size", [texts])
    texts = b.op("Concat", [first, texts], axis=0)  # the loop reads from 1: the check stays in the data flow
    n_pairs = b.op("Div", [trips, b.const(2)])

    body = Builder(PREFIX + "loop/", root=b)
    text = body.op("Gather", [texts, body.op("Add", [body.op("Unsqueeze", [PREFIX + "i", b.const([0])]), b.const(1)])])
    ids = text_ids(body, spec, text)
    count = body.op("Size", [ids])
    padded = body.op("Concat", [ids, b.const(np.full(budget, pad, dtype=np.int64))], axis=0)
    body.op("Slice", [padded, b.const([0]), b.const([budget])], [PREFIX + "capped"])
    body.op("Identity", [count], [PREFIX + "count"])
    body.op("Identity", [PREFIX + "cond"], [PREFIX + "cond_out"])
    loop_graph = helper.make_graph(
        body.nodes,
        "tokenize",
        [
            helper.make_tensor_value_info(PREFIX + "i", TensorProto.INT64, []),
            helper.make_tensor_value_info(PREFIX + "cond", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info(PREFIX + "cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info(PREFIX + "capped", TensorProto.INT64, [budget]),
            helper.make_tensor_value_info(PREFIX + "count", TensorProto.INT64, []),
        ],
    )
    rows, counts = b.op("Loop", [trips, b.const(True, bool)], 2, body=loop_graph)
    n = b.op("Unsqueeze", [n_pairs, b.const([0])])
    a_rows, b_rows = (b.op("Slice", [rows, s, e, b.const([0])]) for s, e in ((b.const([0]), n), (n, b.const([2**62]))))
    n1, n2 = (b.op("Slice", [counts, s, e, b.const([0])]) for s, e in ((b.const([0]), n), (n, b.const([2**62]))))
    k1, k2 = _longest_first(b, n1, n2, budget)

    # lay out each pair by the template, padded to the batch's longest
    lengths = [
        b.const(np.full(1, len(ids), dtype=np.int64)) if what == "special" else (k1 if what == "A" else k2)
        for what, ids, _ in template
    ]
    offsets = [b.const([0])]
    for length in lengths:
        offsets.append(b.op("Add", [offsets[-1], length]))
    total = b.op("Expand", [offsets[-1], b.op("Shape", [n1])])
    width = b.op("Gather", [total, b.op("ArgMax", [total], axis=0, keepdims=1)])
    position = b.op(
        "Unsqueeze", [b.op("Range", [b.const(0), b.op("Squeeze", [width, b.const([0])]), b.const(1)]), b.const([0])]
    )
    shape = b.op("Concat", [b.op("Shape", [n1]), width], axis=0)
    input_ids = b.op("ConstantOfShape", [shape], value=helper.make_tensor("v", TensorProto.INT64, [1], [pad]))
    types = b.op("ConstantOfShape", [shape], value=helper.make_tensor("v", TensorProto.INT64, [1], [0]))
    for (what, item_ids, type_id), start, end in zip(template, offsets[:-1], offsets[1:], strict=True):
        start2, end2 = (b.op("Unsqueeze", [x, b.const([1])]) for x in (start, end))
        inside = b.op("And", [b.op("GreaterOrEqual", [position, start2]), b.op("Less", [position, end2])])
        relative = b.op("Max", [b.op("Sub", [position, start2]), b.const(0)])
        if what == "special":
            values = b.op("Gather", [b.const(item_ids), b.op("Min", [relative, b.const(len(item_ids) - 1)])])
        else:
            index = b.op("Expand", [b.op("Min", [relative, b.const(budget - 1)]), shape])  # one row per pair
            values = b.op("GatherElements", [a_rows if what == "A" else b_rows, index], axis=1)
        input_ids = b.op("Where", [inside, values, input_ids])
        types = b.op("Where", [inside, b.const(type_id), types])
    mask = b.op("Cast", [b.op("Less", [position, b.op("Unsqueeze", [total, b.const([1])])])], to=TensorProto.INT64)
    return _with_model(
        b, inner, {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}, out, sigmoid
    )


def _longest_first(b: Builder, n1: str, n2: str, budget: int) -> tuple[str, str]:
    """Tokens kept of each text: tokenizers' longest_first (the shorter kept whole when it fits in half, else both
    cut to half, the longer one getting the odd token)."""
    m = b.const(budget)
    short = b.op("Min", [n1, n2])
    long2 = b.op("Where", [b.op("Greater", [short, m]), short, b.op("Max", [short, b.op("Sub", [m, short])])])
    both = b.op("Greater", [b.op("Add", [short, long2]), m])
    short3 = b.op("Where", [both, b.const(budget // 2), short])
    long3 = b.op("Where", [both, b.const(budget // 2 + budget % 2), long2])
    swap = b.op("Greater", [n1, n2])
    over = b.op("Greater", [b.op("Add", [n1, n2]), m])
    k1 = b.op("Where", [swap, long3, short3])
    k2 = b.op("Where", [swap, short3, long3])
    return (b.op("Where", [over, b.op("Min", [n1, k1]), n1]), b.op("Where", [over, b.op("Min", [n2, k2]), n2]))


def _with_model(b: Builder, inner: Any, feeds: dict[str, str], out: str, sigmoid: bool) -> Any:
    """The model graph appended: its inputs fed by the pipeline, its names prefixed, its first output flattened."""
    from onnx import TensorProto, helper

    graph = inner.graph
    inits = {t.name for t in graph.initializer}
    names = {i.name for i in graph.input} - inits  # (an old IR lists its initializers as inputs too)
    unknown = names - set(feeds)
    if unknown:
        raise ModelLoadError(f"the model graph takes {sorted(unknown)}: a text pipeline feeds {sorted(feeds)} only")
    rename = {name: feeds[name] for name in names}
    for node in graph.node:
        node.name = PREFIX + "model/" + node.name
        node.input[:] = [rename.get(x, x if x in inits or not x else PREFIX + "model/" + x) for x in node.input]
        node.output[:] = [PREFIX + "model/" + x if x else x for x in node.output]
        if any(a.type in (5, 10) for a in node.attribute):  # GRAPH(S): their outer names would need renaming too
            raise ModelLoadError("the model graph has subgraphs (If/Loop): not supported in a text pipeline")
    logits = PREFIX + "model/" + graph.output[0].name
    flat = b.op("Reshape", [logits, b.const([-1])])
    b.op("Sigmoid" if sigmoid else "Identity", [flat], [out])
    pipeline = helper.make_graph(
        [*b.nodes[:-2], *graph.node, *b.nodes[-2:]],  # the output's two nodes after the model's
        "osrerank-text-pipeline",
        [helper.make_tensor_value_info(name, TensorProto.STRING, ["pairs"]) for name in INPUTS],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["pairs"])],
        [*b.initializers, *graph.initializer],
    )
    own = {o.domain: o.version for o in inner.opset_import}
    opsets = [o for o in inner.opset_import if o.domain not in EXTRA_OPSETS]
    opsets += [
        helper.make_opsetid(domain, max(version, own.get(domain, 0))) for domain, version in EXTRA_OPSETS.items()
    ]
    model = helper.make_model(pipeline, opset_imports=opsets, ir_version=inner.ir_version)
    model.doc_string = "osrerank text pipeline: first_input, second_input (strings) -> one score per pair"
    return model
