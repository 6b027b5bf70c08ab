"""The embedded default: the OpenSearch tutorial's four passages and query, end to end."""

from __future__ import annotations

from .ingest import create_index, delete_index, load_documents
from .reranker import Reranker, SetupResult
from .search import SearchResult
from .settings import Settings
from .types import Progress

__all__ = ["TUTORIAL_PASSAGES", "TUTORIAL_QUERY", "run_demo"]

TUTORIAL_QUERY = "What is the capital of the United States?"
#: Exactly as in the tutorial's _bulk request (including its "beforethe").
TUTORIAL_PASSAGES = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. "
    "Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) "
    "is the capital of the United States. It is a federal district.",
    "Capital punishment (the death penalty) has existed in the United States since beforethe United States "
    "was a country. As of 2017, capital punishment is legal in 30 of the 50 states.",
]


def run_demo(settings: Settings, progress: Progress) -> tuple[SetupResult, SearchResult]:
    """Local cluster + stand-in + tutorial data + setup + the tutorial search (match_all, size 4)."""
    reranker = Reranker(settings, progress)
    result = reranker.setup()
    cluster = reranker.cluster()
    index = settings.index
    progress(f"loading the tutorial's {len(TUTORIAL_PASSAGES)} passages into {index.name}")
    delete_index(cluster, index.name)
    create_index(cluster, index.name, index.document_fields)
    field = index.document_fields[0]
    load_documents(cluster, index.name, [{field: p} for p in TUTORIAL_PASSAGES])
    return result, reranker.search(TUTORIAL_QUERY, size=len(TUTORIAL_PASSAGES), match_all=True)
