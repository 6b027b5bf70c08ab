"""The stand-in's reading of Cohere's rerank body (v1 and v2) and Bedrock InvokeModel's: what each API requires,
and a refusal that names the field, before any pair reaches the model. Pure functions, milliseconds."""

from __future__ import annotations

import re
from typing import Any

import pytest

from osrerank.server.payloads import ServerError, cohere_pairs, invoke_pairs

DOCS = ["Carson City is the capital of Nevada.", {"text": "Washington, D.C. is the capital of the United States."}]
TEXTS = ["Carson City is the capital of Nevada.", "Washington, D.C. is the capital of the United States."]


def test_cohere_v2_reads_query_documents_top_n_and_the_texts_flag() -> None:
    body = {"model": "rerank-v3.5", "query": "capital?", "documents": DOCS, "top_n": 1, "return_documents": True}
    pairs, top_n, return_documents = cohere_pairs(body, 2)
    assert pairs.pairs == [("capital?", t) for t in TEXTS] and pairs.truncation and pairs.activation == "sigmoid"
    assert (top_n, return_documents) == (1, True)


def test_cohere_v1_needs_no_model_and_returns_every_document_by_default() -> None:
    pairs, top_n, return_documents = cohere_pairs({"query": "capital?", "documents": DOCS}, 1)
    assert len(pairs.pairs) == 2 and (top_n, return_documents) == (2, False)


def test_bedrock_invoke_reads_query_documents_and_top_n() -> None:
    pairs, top_n = invoke_pairs({"query": "capital?", "documents": TEXTS, "top_n": 2, "api_version": 2})
    assert pairs.pairs == [("capital?", t) for t in TEXTS] and top_n == 2


@pytest.mark.parametrize(
    ("body", "version", "message"),
    [
        ({"query": "q", "documents": TEXTS}, 2, '"model" is required'),
        ([{"query": "q"}], 2, "body must be an object"),
        ("q", 1, "body must be an object"),
        ({"model": "m", "query": 3, "documents": TEXTS}, 2, "query must be a string"),
        ({"model": "m", "query": "q", "documents": "one text"}, 2, '"documents" must be a list'),
        ({"model": "m", "query": "q", "documents": []}, 2, "no pairs to score"),
        ({"model": "m", "query": "q", "documents": [{"title": "no text"}]}, 2, "documents[0] must be a string"),
        ({"model": "m", "query": "q", "documents": TEXTS, "top_n": 0}, 2, '"top_n" must be a positive integer'),
        ({"model": "m", "query": "q", "documents": TEXTS, "top_n": "2"}, 2, '"top_n" must be a positive integer'),
    ],
)
def test_cohere_refuses_naming_the_field(body: Any, version: int, message: str) -> None:
    with pytest.raises(ServerError, match=re.escape(message)) as refused:
        cohere_pairs(body, version)
    assert refused.value.error_type in {"validation", "empty"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "body must be an object"),
        ({"query": "q", "documents": {"0": "text"}}, '"documents" must be a list of strings'),
        ({"documents": TEXTS}, "query must be a string, got NoneType"),
        ({"query": "q", "documents": TEXTS, "top_n": -1}, '"top_n" must be a positive integer'),
    ],
)
def test_bedrock_invoke_refuses_naming_the_field(body: Any, message: str) -> None:
    with pytest.raises(ServerError, match=re.escape(message)):
        invoke_pairs(body)


def test_more_documents_than_the_limit_are_refused_before_reading_them() -> None:
    with pytest.raises(ServerError, match="batch size 3 > maximum allowed batch size 2"):
        invoke_pairs({"query": "q", "documents": ["a", "b", 7]}, limit=2)
