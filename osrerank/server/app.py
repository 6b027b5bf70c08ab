"""The stand-in model server: SageMaker runtime, TorchServe and TEI-style APIs over one scorer.

Routes (all JSON):

    GET  /ping, /health                      liveness (never authenticated)
    POST /endpoints/{name}/invocations      SageMaker runtime
    POST /invocations                       SageMaker container path (what the real container serves)
    POST /predictions/{model}               TorchServe inference API: pair list -> list of scores
    POST /rerank                            TEI: {"query","texts"} -> [{"index","score"}] by score; and, told apart
                                            by its body ({"queries","sources"}), Bedrock Agent Runtime Rerank,
                                            whose path it is too (also served at /bedrock/rerank)
    POST /v1/rerank, /v2/rerank             Cohere: {"query","documents"} -> {"results": [{"index","relevance_score"}]}
    POST /embed                             TEI: {"inputs": [...]} -> one normalized embedding per text (an
                                            embedding model, --kind bi-encoder: a neural first stage's)
    POST /model/{id}/invoke                 Bedrock InvokeModel (amazon.rerank-v1:0, cohere.rerank-v3-5:0):
                                            {"query","documents"} -> {"results": [{"index","relevance_score"}]}
    GET  /metrics                           Prometheus text counters (never authenticated)
    GET|DELETE /_osrerank/received          texts received (only with record=True; for tests)

Every other route needs a SigV4 signature or the bearer token unless the server runs open (auth.py); an
authenticated request for a path that is none of these gets a 404. Relevance scores go out with 9
significant digits: ml-commons' built-in Cohere post-process casts each to a Double, and its JSON reader makes
a number of more than 18 characters a BigDecimal.
A request is read and checked (payloads.py), tokenized on its own, and only then queued for the model
(batcher.py), so a bad request fails alone and a too-long one fails before any model work. One error
body everywhere: ``{"error": str, "error_type": str}``, its status from ``payloads.STATUS``: 4xx for
the client's mistakes, 424 only when the model itself fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import ScoringError
from ..model import Activation, activate
from ..score_cache import ENTRY_BYTES
from ..scorer import Encoded, PairScorer
from .auth import PUBLIC_PATHS, Auth, AuthMiddleware
from .batcher import DynamicBatcher
from .payloads import (
    MAX_BODY,
    STATUS,
    Pairs,
    ServerError,
    bedrock_pairs,
    cohere_pairs,
    embed_texts,
    invoke_pairs,
    read_json,
    rerank_pairs,
    sagemaker_pairs,
    torchserve_pairs,
)

__all__ = ["create_app"]

log = logging.getLogger("osrerank.server")
#: Slices tokenized at once, and pairs per slice: a maximal request is tokenized a slice at a time, so a
#: small request that arrives meanwhile is tokenized between two slices, not after the whole.
TOKENIZING = 1
TOKENIZE_SLICE = 32


class Handlers:
    """The stand-in's request handlers, bound to one scorer, batcher and set of counters."""

    def __init__(
        self,
        scorer: PairScorer,
        activation: Activation,
        record: bool,
        max_batch_tokens: int,
        max_wait_s: float,
        max_client_batch_size: int | None,
    ) -> None:
        self.scorer, self.activation, self.limit = scorer, activation, max_client_batch_size
        self.batcher = DynamicBatcher(scorer, max_batch_tokens=max_batch_tokens, max_wait_s=max_wait_s)
        self.received: deque[dict[str, Any]] | None = deque(maxlen=2000) if record else None
        self.http_requests: Counter[tuple[str, int]] = Counter()
        self.rejected: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.accepted = 0
        self.latency_sum = 0.0
        self.tokenizing = asyncio.Semaphore(TOKENIZING)
        self.embedding = asyncio.Semaphore(1)

    def count_rejection(self, reason: str) -> None:
        self.rejected[reason] += 1

    async def _score(self, route: str, request: Request, asked: Pairs) -> np.ndarray:
        """Scores after the asked activation: tokenize, check lengths, then wait for the model (dropping
        the work if the client goes away meanwhile)."""
        if self.received is not None:
            self.received.append({"route": route, "pairs": [[q, d or ""] for q, d in asked.pairs]})
        found = self.scorer.cache.lookup(asked.pairs)  # every pair a miss when the cache is off
        pairs = [asked.pairs[i] for i in found.missing]
        parts = []
        for start in range(0, len(pairs), TOKENIZE_SLICE):  # slices: a huge request cannot hold the tokenizer
            async with self.tokenizing:
                parts.append(await asyncio.to_thread(self.scorer.encode, pairs[start : start + TOKENIZE_SLICE]))
        encoded = Encoded.join(parts)
        truncated = found.truncated.copy()
        truncated[found.missing] = encoded.truncated
        if not asked.truncation and truncated.any():
            i = int(np.argmax(truncated))
            raise ServerError(
                "validation",
                f"input pair {i} is longer than the model's maximum of {self.scorer.max_length} tokens; send "
                + ('"truncate": true' if route == "rerank" else '"parameters": {"truncation": true}')
                + " to truncate",
            )
        scoring = asyncio.ensure_future(self.batcher.score(encoded))
        gone = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({scoring, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not scoring.done():
            scoring.cancel()
            raise ServerError("client_gone", "the client closed the connection before its scores were ready")
        try:
            self.scorer.cache.fill(found, scoring.result(), encoded.truncated)
        except ScoringError as exc:
            raise ServerError("backend", str(exc)) from exc
        raw = found.values
        values = activate(raw, asked.activation) if self.scorer.squashed else raw
        if not np.all(np.isfinite(values)):
            raise ServerError("backend", "the model produced a non-finite score")
        return values

    async def sagemaker(self, request: Request) -> Response:
        req = sagemaker_pairs(await read_json(request), self.activation, self.limit)
        values = await self._score("sagemaker", request, req.asked) if req.asked.pairs else []
        answers = [{"label": self.scorer.label, "score": float(v)} for v in values]
        return JSONResponse(answers[0] if req.single else answers)

    async def torchserve(self, request: Request) -> Response:
        asked = torchserve_pairs(await read_json(request), self.activation, self.limit)
        return JSONResponse([float(v) for v in await self._score("torchserve", request, asked)])

    async def rerank(self, request: Request) -> Response:
        body = await read_json(request)
        if isinstance(body, dict) and "queries" in body and "sources" in body:  # Bedrock Agent Runtime's /rerank
            return await self._bedrock(request, body)
        asked, return_text = rerank_pairs(body, self.limit)
        values = await self._score("rerank", request, asked)
        order = sorted(range(len(values)), key=lambda i: -values[i])
        ranks = [{"index": i, "score": float(values[i])} for i in order]
        if return_text:
            for r in ranks:
                r["text"] = asked.pairs[r["index"]][1]
        return JSONResponse(ranks)

    async def cohere(self, request: Request) -> Response:
        version = int(request.path_params["version"])
        asked, top_n, return_documents = cohere_pairs(await read_json(request), version, self.limit)
        values = await self._score("cohere", request, asked)
        order = sorted(range(len(values)), key=lambda i: -values[i])[:top_n]
        results = [
            {
                "index": i,
                "relevance_score": _short(values[i]),
                **({"document": {"text": asked.pairs[i][1]}} if return_documents else {}),
            }
            for i in order
        ]
        meta = {"api_version": {"version": str(version)}, "billed_units": {"search_units": 1}}
        return JSONResponse({"id": f"osrerank-{time.monotonic_ns()}", "results": results, "meta": meta})

    async def bedrock(self, request: Request) -> Response:
        return await self._bedrock(request, await read_json(request))

    async def _bedrock(self, request: Request, body: Any) -> Response:
        asked, wanted = bedrock_pairs(body, self.limit)
        values = await self._score("bedrock", request, asked)
        order = sorted(range(len(values)), key=lambda i: -values[i])[:wanted]
        return JSONResponse({"results": [{"index": i, "relevanceScore": _short(values[i])} for i in order]})

    async def invoke(self, request: Request) -> Response:
        asked, top_n = invoke_pairs(await read_json(request), self.limit)
        values = await self._score("invoke", request, asked)
        order = sorted(range(len(values)), key=lambda i: -values[i])[:top_n]
        return JSONResponse({"results": [{"index": i, "relevance_score": _short(values[i])} for i in order]})

    async def embed(self, request: Request) -> Response:
        texts = embed_texts(await read_json(request), self.limit)
        if not self.scorer.kind.embeds:
            raise ServerError(
                "validation", f"this stand-in serves a {self.scorer.kind.name}, which makes no embeddings"
            )
        try:
            async with self.embedding:  # one batch at a time: the engine already uses every core
                vectors = await asyncio.to_thread(self.scorer.embed, texts)
        except ScoringError as exc:
            raise ServerError("backend", str(exc)) from exc
        return JSONResponse([[float(x) for x in v] for v in vectors])

    async def not_found(self, request: Request) -> Response:
        raise ServerError("not_found", f"no route {request.method} {request.url.path} on this stand-in (see /ping)")

    async def ping(self, request: Request) -> Response:
        decision = self.scorer.decision  # with the gate's figures and the speeds auto timed, when it timed any
        precision = {
            "mode": decision.mode,
            "why": decision.reason,
            "pairs_per_s": decision.figures.get("pairs_per_s"),
            "figures": decision.figures,
        }
        cache = self.scorer.cache.stats
        cached = {
            "mb": round(cache.capacity * ENTRY_BYTES / 2**20, 1),
            "entries": cache.entries,
            "hits": cache.hits,
            "misses": cache.misses,
        }
        # pid: whoever started this process can tell it from another server that took the same port
        return JSONResponse({"status": "ok", "pid": os.getpid(), "precision": precision, "score_cache": cached})

    async def metrics(self, request: Request) -> Response:
        s = self.batcher.stats
        lines = [
            f"osrerank_pairs_total {s.pairs}",
            f"osrerank_scoring_requests_total {s.requests}",
            f"osrerank_batches_total {s.batches}",
            f"osrerank_batch_pairs_max {s.batch_pairs_max}",
            f"osrerank_inference_seconds_total {s.inference_seconds:.6f}",
            f"osrerank_isolated_failures_total {s.isolated_failures}",
            f"osrerank_request_seconds_total {self.latency_sum:.6f}",
            f"osrerank_accepted_total {self.accepted}",
        ]
        c = self.scorer.cache.stats
        lines += [
            f"osrerank_score_cache_hits_total {c.hits}",
            f"osrerank_score_cache_misses_total {c.misses}",
            f"osrerank_score_cache_evictions_total {c.evictions}",
            f"osrerank_score_cache_entries {c.entries}",
            f"osrerank_score_cache_bytes {c.bytes}",
            f"osrerank_score_cache_capacity_entries {c.capacity}",
        ]
        lines.append(f'osrerank_precision_info{{mode="{self.scorer.decision.mode}"}} 1')
        lines += [f'osrerank_rejected_total{{reason="{r}"}} {n}' for r, n in sorted(self.rejected.items())]
        lines += [f'osrerank_failed_total{{reason="{r}"}} {n}' for r, n in sorted(self.failed.items())]
        lines += [
            f'osrerank_http_requests_total{{route="{r}",status="{c}"}} {n}'
            for (r, c), n in sorted(self.http_requests.items())
        ]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def received_texts(self, request: Request) -> Response:
        if self.received is None:
            raise ServerError("validation", "recording is off; start the server with record=True (--record)")
        if request.method == "DELETE":
            self.received.clear()
        return JSONResponse(list(self.received))

    def handler(
        self, name: str, fn: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """``fn`` with the error body, the counters and one log line per scoring request."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await fn(request)
                error_type = None
            except ServerError as exc:
                error_type = exc.error_type
                response = JSONResponse({"error": str(exc), "error_type": error_type}, STATUS[error_type])
            except Exception as exc:  # a bug: answer, never hang; the log has the traceback
                log.exception("unexpected error on %s", name)
                error_type = "internal"
                response = JSONResponse({"error": f"{type(exc).__name__}: {exc}", "error_type": error_type}, 500)
            elapsed = time.perf_counter() - started
            self.latency_sum += elapsed
            self.http_requests[(name, response.status_code)] += 1
            if name in ("ping", "metrics", "received"):
                return response
            if error_type is None:
                self.accepted += 1
            elif STATUS[error_type] < 424 or error_type == "client_gone":
                self.rejected[error_type] += 1
            else:
                self.failed[error_type] += 1
            entry = {"route": name, "status": response.status_code, "ms": round(elapsed * 1000, 2)}
            log.info(json.dumps({**entry, **({"error_type": error_type} if error_type else {})}))
            return response

        return endpoint


def _short(score: float) -> float:
    """A relevance score with 9 significant digits (float32's precision), so its JSON is at most 15 characters."""
    return float(f"{float(score):.9g}")


async def _disconnected(request: Request) -> None:
    """Return when the client closes the connection (the body has been read: only a disconnect is left)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(
    scorer: PairScorer,
    *,
    activation: Activation = "sigmoid",
    auth: Auth | None = None,
    record: bool = False,
    max_batch_tokens: int = 2048,
    max_wait_s: float = 0.005,
    max_client_batch_size: int | None = None,
) -> Any:
    """Build the ASGI app. With ``auth`` enabled, every route but /ping, /health and /metrics needs a valid
    SigV4 signature or the bearer token."""
    handlers = Handlers(scorer, activation, record, max_batch_tokens, max_wait_s, max_client_batch_size)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        handlers.batcher.start()
        yield
        await handlers.batcher.close()

    h = handlers.handler
    routes = [
        Route("/ping", h("ping", handlers.ping)),
        Route("/health", h("ping", handlers.ping)),
        Route("/endpoints/{name}/invocations", h("sagemaker", handlers.sagemaker), methods=["POST"]),
        Route("/invocations", h("sagemaker", handlers.sagemaker), methods=["POST"]),
        Route("/predictions/{model}", h("torchserve", handlers.torchserve), methods=["POST"]),
        Route("/rerank", h("rerank", handlers.rerank), methods=["POST"]),
        Route("/v{version:int}/rerank", h("cohere", handlers.cohere), methods=["POST"]),
        Route("/bedrock/rerank", h("bedrock", handlers.bedrock), methods=["POST"]),
        Route("/model/{model_id:path}/invoke", h("invoke", handlers.invoke), methods=["POST"]),
        Route("/embed", h("embed", handlers.embed), methods=["POST"]),
        Route("/metrics", h("metrics", handlers.metrics)),
        Route("/_osrerank/received", h("received", handlers.received_texts), methods=["GET", "DELETE"]),
    ]
    routes.append(Route("/{path:path}", h("not_found", handlers.not_found), methods=["GET", "POST", "PUT", "DELETE"]))
    app: Any = Starlette(routes=routes, lifespan=lifespan)
    app.state.handlers = handlers
    if auth is not None and auth.enabled:
        public = PUBLIC_PATHS | ({"/_osrerank/received"} if record else set())  # recording is for tests only
        app = AuthMiddleware(app, auth, public=public, max_body=MAX_BODY, on_reject=handlers.count_rejection)
    return app
