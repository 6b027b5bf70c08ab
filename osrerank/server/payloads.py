"""Reading and checking request bodies, before any model work: a client's mistake is the client's 4xx.

Limits, the same on every route: a body of at most ``MAX_BODY`` bytes, at most ``MAX_PAIRS`` pairs (or
the server's ``--max-client-batch-size``, TEI's name for it), every text a string of valid Unicode
(a lone surrogate such as ``"\\ud800"`` is refused). Texts longer than the model can read are cut
before tokenizing (scorer.py), so a long text costs no more than a long enough one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..model import Activation

__all__ = [
    "MAX_BODY",
    "MAX_PAIRS",
    "STATUS",
    "Pairs",
    "ServerError",
    "bedrock_pairs",
    "cohere_pairs",
    "embed_texts",
    "invoke_pairs",
    "read_json",
    "rerank_pairs",
    "sagemaker_pairs",
    "torchserve_pairs",
]

#: error_type -> HTTP status, the one table (TEI's ErrorType mapping, plus authentication).
STATUS = {
    "empty": 400,
    "not_found": 404,
    "validation": 400,
    "authentication": 403,
    "too_large": 413,
    "client_gone": 499,
    "backend": 424,
    "internal": 500,
}
MAX_BODY = 16 * 1024 * 1024
MAX_PAIRS = 1024


class ServerError(Exception):
    """A request the server refuses or cannot serve; ``error_type`` picks the HTTP status from ``STATUS``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class Pairs:
    """What a scoring request asks for (a pair without a second text is scored on its first alone)."""

    pairs: list[tuple[str, str | None]]
    truncation: bool
    activation: Activation


async def read_json(request: Request) -> Any:
    """The body as JSON, refused past MAX_BODY bytes (before reading it all, when the length is declared)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise ServerError("too_large", f"request body of {declared} bytes exceeds the limit of {MAX_BODY}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ServerError("too_large", f"request body exceeds the limit of {MAX_BODY} bytes")
    if not body:
        raise ServerError("empty", "request body is empty; send JSON")
    try:
        return json.loads(body)
    except RecursionError:
        raise ServerError("validation", "request body is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ServerError("validation", f"request body is not valid JSON: {exc}") from None


def text(value: Any, where: str) -> str:
    """A text the model can read: a string of Unicode scalar values."""
    if not isinstance(value, str):
        raise ServerError("validation", f"{where} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ServerError(
            "validation", f"{where} is not valid Unicode: lone surrogate U+{ord(value[exc.start]):04X} at {exc.start}"
        ) from None
    return value


def check_count(n: int, limit: int | None, *, allow_empty: bool = False) -> None:
    if not n and not allow_empty:
        raise ServerError("empty", "no pairs to score: send at least one")
    allowed = min(MAX_PAIRS, limit or MAX_PAIRS)
    if n > allowed:
        if limit and limit < MAX_PAIRS:  # TEI's wording, so clients written for TEI recognise it
            raise ServerError("too_large", f"batch size {n} > maximum allowed batch size {limit}")
        raise ServerError("validation", f"{n} pairs in one request; the maximum is {allowed}")


#: The text-classification pipeline parameters the SageMaker route takes (the toolkit hands any other to the
#: tokenizer, which refuses it).
PIPELINE_PARAMETERS = {"truncation", "function_to_apply"}


@dataclass(frozen=True)
class SageMakerRequest:
    """A SageMaker (HF toolkit) request: its pairs, and whether it held a single pair (answered with an object)."""

    asked: Pairs
    single: bool


def _pair_items(items: list[Any], where: str, *, empty_alone: bool) -> list[tuple[str, str | None]]:
    """``{"text", "text_pair"}`` objects as pairs. No ``text_pair`` means the text alone; so does an empty one
    with ``empty_alone``, as the transformers pipeline (and so SageMaker's HF container) encodes it."""
    pairs: list[tuple[str, str | None]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "text" not in item:
            raise ServerError("validation", f'{where}[{i}] must be an object with "text" (and "text_pair")')
        second = item.get("text_pair")
        pair = text(second, f"{where}[{i}].text_pair") if second is not None else None
        pairs.append((text(item["text"], f"{where}[{i}].text"), (pair or None) if empty_alone else pair))
    return pairs


def _activation(params: dict[str, Any], default: Activation) -> Activation:
    value = params.get("function_to_apply", default)
    if value not in ("sigmoid", "none", "softmax"):
        raise ServerError("validation", f'"function_to_apply" must be "sigmoid", "none" or "softmax", got {value!r}')
    return value  # type: ignore[no-any-return]


def sagemaker_pairs(payload: Any, default: Activation, limit: int | None = None) -> SageMakerRequest:
    """The body the Hugging Face inference toolkit takes for HF_TASK=text-classification, as it takes it:
    ``{"inputs": [{"text", "text_pair"}...] | {"text", "text_pair"}, "parameters"?}``, or a bare pair object.
    An empty ``inputs`` list is an empty answer; an unknown parameter is refused; "softmax" over one logit
    is 1.0 (checked against the toolkit itself: tests/contract)."""
    if isinstance(payload, dict) and "text" in payload and "inputs" not in payload:
        payload = {"inputs": payload}
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise ServerError("validation", 'body must be {"inputs": [{"text": ..., "text_pair": ...}, ...]}')
    params = payload.get("parameters") or {}
    if not isinstance(params, dict):
        raise ServerError("validation", '"parameters" must be an object')
    unknown = sorted(set(params) - PIPELINE_PARAMETERS)
    if unknown:
        raise ServerError("validation", f"the pipeline got an unexpected keyword argument {unknown[0]!r}")
    inputs = payload["inputs"]
    single = isinstance(inputs, dict)
    items = [inputs] if single else inputs
    if not isinstance(items, list):
        raise ServerError("validation", '"inputs" must be a list of {"text": ..., "text_pair": ...} objects')
    check_count(len(items), limit, allow_empty=True)
    truncation = params.get("truncation") in (True, "longest_first", "only_first", "only_second")
    pairs = _pair_items(items, "inputs", empty_alone=True)
    return SageMakerRequest(Pairs(pairs, truncation, _activation(params, default)), single)  # type: ignore[arg-type]


def torchserve_pairs(payload: Any, default: Activation, limit: int | None = None) -> Pairs:
    """The TorchServe-style body: a bare list of ``{"text", "text_pair"}`` objects, or ``{"inputs": [...]}``."""
    params: dict[str, Any] = {}
    if isinstance(payload, dict) and "inputs" in payload:
        params = payload.get("parameters") or {}
        payload = payload["inputs"]
    if not isinstance(payload, list) or not isinstance(params, dict):
        raise ServerError("validation", 'body must be a list of {"text": ..., "text_pair": ...} objects')
    check_count(len(payload), limit)
    return Pairs(_pair_items(payload, "inputs", empty_alone=False), True, _activation(params, default))  # type: ignore[arg-type]


def rerank_pairs(body: Any, limit: int | None = None) -> tuple[Pairs, bool]:
    """TEI's /rerank body {"query", "texts", "truncate"?, "raw_scores"?, "return_text"?}; also whether
    the texts go back in the reply."""
    if not isinstance(body, dict):
        raise ServerError("validation", 'body must be an object {"query": ..., "texts": [...]}')
    query = text(body.get("query"), "query")
    texts = body.get("texts")
    if not isinstance(texts, list):
        raise ServerError("validation", '"texts" must be a list of strings')
    if not texts:
        raise ServerError("empty", "`texts` cannot be empty")
    check_count(len(texts), limit)
    docs = [text(t, f"texts[{i}]") for i, t in enumerate(texts)]
    activation: Activation = "none" if body.get("raw_scores") else "sigmoid"
    return Pairs([(query, d) for d in docs], bool(body.get("truncate", False)), activation), bool(
        body.get("return_text")
    )


def cohere_pairs(body: Any, version: int, limit: int | None = None) -> tuple[Pairs, int, bool]:
    """Cohere's rerank body {"query", "documents": [str | {"text"}], "top_n"?, "model" (v2: required),
    "return_documents"? (v1)}; also top_n and whether the texts go back."""
    if version == 2 and isinstance(body, dict) and not isinstance(body.get("model"), str):
        raise ServerError("validation", '"model" is required (Cohere v2 rerank)')
    pairs, top_n = _query_documents_top_n(body, limit, '"documents" must be a list')
    return pairs, top_n, bool(body.get("return_documents"))


def _query_documents_top_n(body: Any, limit: int | None, not_a_list: str) -> tuple[Pairs, int]:
    """The pairs and top_n of a body {"query", "documents": [str | {"text"}], "top_n"?} (Cohere's and Bedrock
    InvokeModel's rerank); ``not_a_list`` is the refusal of documents that are not a list, in that API's words."""
    if not isinstance(body, dict):
        raise ServerError("validation", 'body must be an object {"query": ..., "documents": [...]}')
    query = text(body.get("query"), "query")
    documents = body.get("documents")
    if not isinstance(documents, list):
        raise ServerError("validation", not_a_list)
    check_count(len(documents), limit)
    docs = [text(d.get("text") if isinstance(d, dict) else d, f"documents[{i}]") for i, d in enumerate(documents)]
    top_n = body.get("top_n", len(docs))
    if not isinstance(top_n, int) or top_n < 1:
        raise ServerError("validation", '"top_n" must be a positive integer')
    return Pairs([(query, d) for d in docs], True, "sigmoid"), top_n


def embed_texts(body: Any, limit: int | None = None) -> list[str]:
    """TEI's /embed body {"inputs": str | [str], "normalize"?, "truncate"?}: the texts to embed (always
    normalized and cut to the model's limit, as TEI does by default for a sentence-transformers model)."""
    inputs = body.get("inputs") if isinstance(body, dict) else None
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list):
        raise ServerError("validation", 'body must be an object {"inputs": "text" | ["text", ...]}')
    if not texts:
        raise ServerError("empty", "`inputs` cannot be empty")
    check_count(len(texts), limit)
    return [text(t, f"inputs[{i}]") for i, t in enumerate(texts)]


def invoke_pairs(body: Any, limit: int | None = None) -> tuple[Pairs, int]:
    """Bedrock InvokeModel's rerank body (amazon.rerank-v1:0, cohere.rerank-v3-5:0): {"query", "documents":
    [str], "top_n"?, "api_version"?}; also how many results go back."""
    return _query_documents_top_n(body, limit, '"documents" must be a list of strings')


def bedrock_pairs(body: Any, limit: int | None = None) -> tuple[Pairs, int]:
    """The Bedrock Agent Runtime Rerank body: one TEXT query, INLINE TEXT sources, and numberOfResults."""
    try:
        (query,) = body["queries"]
        q = text(query["textQuery"]["text"], "queries[0].textQuery.text")
        sources = body["sources"]
        config = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    except (KeyError, TypeError, ValueError):
        raise ServerError(
            "validation",
            "body must hold one TEXT query in queries, sources and bedrockRerankingConfiguration",
        ) from None
    if not isinstance(sources, list):
        raise ServerError("validation", '"sources" must be a list')
    check_count(len(sources), limit)
    docs = []
    for i, source in enumerate(sources):
        try:
            docs.append(text(source["inlineDocumentSource"]["textDocument"]["text"], f"sources[{i}]"))
        except (KeyError, TypeError):
            raise ServerError("validation", f"sources[{i}] must be an INLINE TEXT document") from None
    wanted = config.get("numberOfResults", len(docs)) if isinstance(config, dict) else len(docs)
    return Pairs([(q, d) for d in docs], True, "sigmoid"), int(wanted)
