"""The interface of a model kind: how one family of models turns (query, document) pairs into one raw score
each. The scorer (scorer.py) does what every kind shares: the tokenizer's cut, length-sorted batches, padding,
the engine; a kind says what differs: which folders it is, its limits, how a pair is encoded, what a batch's
output means, how its PyTorch weights become ONNX, and where it can run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelLoadError
from ..model import onnx_path, read_json

__all__ = ["Encoded", "Forward", "ModelKind", "Pair"]

#: A (query, document) pair; a pair without a document (None) is the query alone, as the transformers
#: pipeline encodes an empty ``text_pair``.
Pair = tuple[str, str | None]


@dataclass(frozen=True)
class Encoded:
    """Tokenized pairs: one item per pair (an Encoding; for a bi-encoder the query's and the document's),
    whether each was truncated, and its token count (what scheduling budgets are measured in)."""

    items: list[Any]
    truncated: np.ndarray
    tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def slice(self, start: int, stop: int) -> Encoded:
        return Encoded(self.items[start:stop], self.truncated[start:stop], self.tokens[start:stop])

    def picked(self, order: np.ndarray) -> Encoded:
        """These pairs in ``order`` (indices into them)."""
        return Encoded([self.items[i] for i in order], self.truncated[order], self.tokens[order])

    @staticmethod
    def join(parts: Sequence[Encoded]) -> Encoded:
        return Encoded(
            [item for p in parts for item in p.items],
            np.concatenate([p.truncated for p in parts]) if parts else np.zeros(0, dtype=bool),
            np.concatenate([p.tokens for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        )


#: Runs the model over encodings (length-batched by the scorer); one output row per encoding, in order.
Forward = Callable[[list[Any]], np.ndarray]


class ModelKind(ABC):
    """One family of models, bound to one folder. Subclasses are registered by name in ``kinds/__init__.py``."""

    #: The name users pick it by (``--kind``), one line saying what it is, and the targets that can run it.
    name: ClassVar[str]
    summary: ClassVar[str]
    targets: ClassVar[frozenset[str]]
    #: Whether the score activation (sigmoid) applies to its raw value (a bi-encoder's cosine stays as it is).
    squashed: ClassVar[bool] = True
    #: Whether it makes embeddings (``embed``): what a neural first stage needs of a model.
    embeds: ClassVar[bool] = False
    #: Where a batch's padding goes: after each sequence (encoders), or before it (decoders, whose score is read
    #: at the last position).
    pad_side: ClassVar[str] = "right"
    #: Whether its graph takes the texts themselves (a text pipeline, with its tokenizer inside): the scorer then
    #: hands ``score`` a forward that runs the kind's own feed of strings instead of padded token ids.
    takes_text: ClassVar[bool] = False

    def __init__(self, folder: Path, options: Any = None) -> None:
        self.folder, self.options = folder, options
        self.config = read_json(folder / "config.json")
        self.check()

    def check(self) -> None:  # noqa: B027 (a kind that accepts every folder has nothing to add)
        """Refuse a folder that is not this kind (ModelLoadError naming what it is)."""

    def check_kit(self) -> None:  # noqa: B027 (most kinds: whatever loads, the scorer runs)
        """Refuse a folder the kit's own scorer cannot run as its files say (ModelLoadError with the way out)."""

    @property
    def architectures(self) -> list[str]:
        return list(self.config.get("architectures") or [])

    @property
    def has_classifier(self) -> bool:
        """Whether the folder's model ends in a sequence-classification head (a cross-encoder does)."""
        return any(a.endswith("ForSequenceClassification") for a in self.architectures)

    @property
    def label(self) -> str:
        """The name of its one output, as a text-classification pipeline reports it."""
        return str(next(iter(self.config.get("id2label", {"0": "LABEL_0"}).values())))

    def limits(self) -> list[int]:
        """Token limits a pair must fit (the smallest wins, with --max-length)."""
        tokenizer = read_json(self.folder / "tokenizer_config.json")
        return [self.config.get("max_position_embeddings", 512), tokenizer.get("model_max_length", 512)]

    def graph(self) -> Path:
        """The ONNX graph the kit's own engines run (a kind may rewrite the folder's, checked on this ONNX Runtime)."""
        return self.own_graph()

    def own_graph(self) -> Path:
        """The folder's ONNX graph, or its PyTorch weights exported once: what goes to runtimes the kit does not
        check a rewrite on (ml-commons' ONNX Runtime in the cluster, an exported file)."""
        return onnx_path(self.folder, self.export)

    def tokenizer(self, max_length: int) -> Any:
        """The folder's tokenizer, cutting each pair to ``max_length`` tokens, no padding (the scorer pads)."""
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.folder / 'tokenizer.json'}: {exc}") from exc
        tokenizer.enable_truncation(max_length, strategy="longest_first")
        tokenizer.no_padding()
        return tokenizer

    @abstractmethod
    def encode(self, tokenizer: Any, pairs: Sequence[Pair], cap: int) -> Encoded:
        """Tokenize pairs, each text first cut to ``cap`` characters."""

    @abstractmethod
    def reduce(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One row per sequence from a batch's first graph output."""

    @abstractmethod
    def score(self, forward: Forward, items: Sequence[Any]) -> np.ndarray:
        """Raw scores (float64, input order) of encoded pairs."""

    def embed(self, tokenizer: Any, forward: Forward, texts: Sequence[str], cap: int) -> np.ndarray:
        """One embedding per text, in order (kinds that make embeddings)."""
        raise ModelLoadError(f"{self.folder} is a {self.name}, which makes no embeddings: pass an embedding model")

    @abstractmethod
    def export(self, folder: Path, target: Path) -> Path:
        """Write ``folder``'s PyTorch weights as the ONNX graph this kind runs; returns ``target``."""
