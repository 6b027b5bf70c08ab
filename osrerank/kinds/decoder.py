"""Kind ``decoder``: LLM rerankers, a causal language model scored by its answer token at the last position
(seed 002's second family: bge-reranker-v2-gemma; Qwen3-Reranker 0.6B/4B/8B).

Each format says how a pair becomes one prompt and which logits make the score, as the models' own code does:

- ``bge-reranker-gemma``: ``<bos>`` + ``A: {query}`` (cut to 3/4 of the max length) + ``\\n`` + ``B: {passage}``
  (cut so the pair fits the max length) + ``\\n`` + the yes/no instruction; raw value = the logit of "Yes".
- ``qwen3-reranker``: the chat prefix + ``<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}`` (cut
  to fit between prefix and suffix) + the assistant suffix; raw value = logit("yes") - logit("no"), whose sigmoid
  is exactly the card's p(yes) = softmax over the two.

The score is the sigmoid of the raw value, as for a cross-encoder's logit. The ONNX graph computes the raw value
itself (the last position's hidden state against the answer tokens' rows of the LM head only, no KV cache, one
forward pass); batches are padded on the left, so the last position is every sequence's own last token (RoPE
positions are relative: a shift by the padding changes nothing). Served behind the connectors (stand-in,
TorchServe, a user's vLLM); ml-commons' in-cluster TEXT_SIMILARITY runs pair encoders only, and SageMaker's
HF container's text-classification task cannot run a causal LM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError, ToolMissingError
from ..model import onnx_path, read_json
from .base import Encoded, Forward, ModelKind, Pair

__all__ = ["DEFAULT_INSTRUCTION", "FORMATS", "Decoder", "DecoderFormat", "detect_format"]

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
#: Tokens a decoder pair is cut to unless --max-length says otherwise (bge-reranker-v2-gemma's own default).
DEFAULT_MAX_LENGTH = 1024


@dataclass(frozen=True)
class DecoderFormat:
    """One family's prompt and answer tokens, and the hub ids its folders carry."""

    name: str
    hub_ids: tuple[str, ...]
    yes: str
    no: str | None  # None: the raw value is the yes logit alone


FORMATS: dict[str, DecoderFormat] = {
    f.name: f
    for f in (
        DecoderFormat("qwen3-reranker", ("Qwen3-Reranker",), "yes", "no"),
        DecoderFormat("bge-reranker-gemma", ("bge-reranker-v2-gemma",), "Yes", None),
    )
}
BGE_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing a "
    "prediction of either 'Yes' or 'No'."
)
QWEN_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def detect_format(folder: Path) -> str | None:
    """The format a folder says it has: the hub id its config carries (``_name_or_path``), or None."""
    names = " ".join(
        str(read_json(folder / f).get(k, ""))
        for f, k in (("config.json", "_name_or_path"), ("config_sentence_transformers.json", "model_name"))
    )
    return next((f.name for f in FORMATS.values() if any(h in names for h in f.hub_ids)), None)


@dataclass(frozen=True)
class Ids:
    """A tokenized prompt, shaped like a tokenizers Encoding for the scorer's padding."""

    ids: list[int]

    @property
    def type_ids(self) -> list[int]:
        return [0] * len(self.ids)


class Decoder(ModelKind):
    name = "decoder"
    summary = "an LLM reranker scored by its yes logit (Qwen3-Reranker, bge-reranker-v2-gemma: --decoder-format)"
    targets = frozenset({"standin", "torchserve"})
    pad_side = "left"

    def __init__(self, folder: Path, options: Any = None) -> None:
        super().__init__(folder, options)
        asked = getattr(options, "decoder_format", None)
        found = asked or detect_format(folder)
        if found is None:
            raise ModelLoadError(
                f"{folder} is a {', '.join(self.architectures)} with no known reranker format in its files: pass "
                f"--decoder-format {' or '.join(FORMATS)}"
            )
        self.format = FORMATS[found]
        self.instruction = getattr(options, "instruction", None) or DEFAULT_INSTRUCTION
        self.limit = DEFAULT_MAX_LENGTH  # the scorer sets the one it settles on (tokenizer())

    def check(self) -> None:
        if not any(a.endswith("ForCausalLM") for a in self.architectures):
            raise ModelLoadError(
                f"{self.folder} is a {', '.join(self.architectures) or 'model without architectures'}, not a causal "
                "language model: --kind decoder is for LLM rerankers (Qwen3-Reranker, bge-reranker-v2-gemma)"
            )

    @property
    def label(self) -> str:
        return "LABEL_0"

    def limits(self) -> list[int]:
        return [*super().limits(), DEFAULT_MAX_LENGTH]

    def tokenizer(self, max_length: int) -> Any:
        tokenizer = super().tokenizer(max_length)
        tokenizer.no_truncation()  # each part is cut by the format's own rule, in encode
        self.limit = max_length
        self._answer_ids(tokenizer)  # refuse a vocabulary without single answer tokens now, not at the first call
        return tokenizer

    def _answer_ids(self, tokenizer: Any) -> tuple[int, int | None]:
        def single(token: str) -> int:
            ids = tokenizer.encode(token, add_special_tokens=False).ids
            if len(ids) != 1:
                raise ModelLoadError(f"{self.folder}'s tokenizer splits the answer {token!r} into {len(ids)} tokens")
            return int(ids[0])

        return single(self.format.yes), single(self.format.no) if self.format.no else None

    def encode(self, tokenizer: Any, pairs: Sequence[Pair], cap: int) -> Encoded:
        limit = self.limit
        items, cut = [], []
        for query, doc in pairs:
            ids, truncated = self._prompt(tokenizer, query[:cap], (doc or "")[:cap], limit)
            items.append(Ids(ids))
            cut.append(truncated or len(query) > cap or len(doc or "") > cap)
        return Encoded(items, np.array(cut, dtype=bool), np.array([len(i.ids) for i in items], dtype=np.int64))

    def _prompt(self, tokenizer: Any, query: str, doc: str, limit: int) -> tuple[list[int], bool]:
        def ids(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False).ids)

        if self.format.name == "qwen3-reranker":
            prefix, suffix = ids(QWEN_PREFIX), ids(QWEN_SUFFIX)
            body = ids(f"<Instruct>: {self.instruction}\n<Query>: {query}\n<Document>: {doc}")
            room = limit - len(prefix) - len(suffix)
            return prefix + body[:room] + suffix, len(body) > room
        bos = tokenizer.token_to_id("<bos>")
        sep, prompt = ids("\n"), ids(BGE_PROMPT)
        first = [bos, *ids(f"A: {query}")[: limit * 3 // 4]]
        passage = sep + ids(f"B: {doc}")[:limit]
        room = limit - len(first)
        return first + passage[:room] + sep + prompt, len(passage) > room or len(ids(f"A: {query}")) > limit * 3 // 4

    def reduce(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return output

    def score(self, forward: Forward, items: Sequence[Any]) -> np.ndarray:
        return forward(list(items))[:, 0].astype(np.float64)

    def graph(self) -> Path:
        return onnx_path(self.folder, self.export, tag=f"decoder-{self.format.name}")

    def export(self, folder: Path, target: Path) -> Path:
        """The raw value's graph: input_ids, attention_mask (left-padded) -> [batch, 1]."""
        try:
            import torch
            from tokenizers import Tokenizer
            from transformers import AutoModelForCausalLM
        except ImportError:
            raise ToolMissingError(
                f"{folder} has PyTorch weights only; exporting a decoder reranker needs: pip install 'osrerank[torch]'"
            ) from None
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
        model.eval()
        yes, no = self._answer_ids(Tokenizer.from_file(str(folder / "tokenizer.json")))
        rows = [yes, *([no] if no is not None else [])]
        cap = getattr(model.config, "final_logit_softcapping", None)

        class RawValue(torch.nn.Module):
            """The answer tokens' logits at the last position, and the format's formula over them."""

            def __init__(self) -> None:
                super().__init__()
                self.body, self.head = model.model, model.get_output_embeddings()

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                hidden = self.body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
                last = hidden.last_hidden_state[:, -1, :]
                logits = last @ self.head.weight[rows].T
                if getattr(self.head, "bias", None) is not None:
                    logits = logits + self.head.bias[rows]
                if cap:
                    logits = torch.tanh(logits / cap) * cap
                raw = logits[:, :1] - logits[:, 1:2] if len(rows) == 2 else logits[:, :1]
                return raw

        pad = int(model.config.pad_token_id or 0)
        ids = torch.full((2, 9), pad, dtype=torch.long)
        ids[0, :], ids[1, 4:] = 5, 6  # left padding, as the scorer pads
        mask = (torch.arange(9)[None, :] >= torch.tensor([[0], [4]])).long()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with torch.no_grad():
            torch.onnx.export(
                RawValue(),
                (ids, mask),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["raw"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "raw": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        tmp.rename(target)
        return target
