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

__all__ = ["MAX_BODY", "MAX_PAIRS", "STATUS", "Pairs", "ServerError", "read_json", "rerank_pairs", "sagemaker_pairs"]

#: error_type -> HTTP status, the one table (TEI's ErrorType mapping, plus authentication).
STATUS = {
    "empty": 400,
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
    """What a scoring request asks for."""

    pairs: list[tuple[str, str]]
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


def check_count(n: int, limit: int | None) -> None:
    if not n:
        raise ServerError("empty", "no pairs to score: send at least one")
    allowed = min(MAX_PAIRS, limit or MAX_PAIRS)
    if n > allowed:
        if limit and limit < MAX_PAIRS:  # TEI's wording, so clients written for TEI recognise it
            raise ServerError("too_large", f"batch size {n} > maximum allowed batch size {limit}")
        raise ServerError("validation", f"{n} pairs in one request; the maximum is {allowed}")


def sagemaker_pairs(payload: Any, default: Activation, limit: int | None = None) -> Pairs:
    """The HF text-classification body: {"inputs": [{"text","text_pair"}...], "parameters"?}.

    A bare list, or a single {"text","text_pair"} object, is accepted too, as the HF container does.
    The activation is the pipeline's ``function_to_apply`` ("sigmoid" or "none") when sent."""
    truncation, activation = False, default
    if isinstance(payload, dict) and "inputs" in payload:
        params = payload.get("parameters") or {}
        if not isinstance(params, dict):
            raise ServerError("validation", '"parameters" must be an object')
        truncation = params.get("truncation") in (True, "longest_first", "only_first", "only_second")
        if "function_to_apply" in params:
            activation = params["function_to_apply"]
            if activation not in ("sigmoid", "none"):
                raise ServerError(
                    "validation",
                    f'"function_to_apply" must be "sigmoid" or "none" for a one-logit model, got {activation!r}',
                )
        payload = payload["inputs"]
    items = [payload] if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ServerError("validation", '"inputs" must be a list of {"text": ..., "text_pair": ...} objects')
    if not items:
        raise ServerError("empty", '"inputs" is empty: send at least one {"text", "text_pair"} pair')
    check_count(len(items), limit)
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "text" not in item or "text_pair" not in item:
            raise ServerError("validation", f'inputs[{i}] must be an object with "text" and "text_pair"')
        pairs.append((text(item["text"], f"inputs[{i}].text"), text(item["text_pair"], f"inputs[{i}].text_pair")))
    return Pairs(pairs, truncation, activation)


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
