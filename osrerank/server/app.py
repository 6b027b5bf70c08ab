"""The stand-in model server: SageMaker runtime, TorchServe and TEI-style APIs over one scorer.

Routes (all JSON):

    GET  /ping, /health                      liveness (never authenticated)
    POST /endpoints/{name}/invocations      SageMaker runtime
    POST /invocations                       SageMaker container path (what the real container serves)
    POST /predictions/{model}               TorchServe inference API: pair list -> list of scores
    POST /rerank                            TEI: {"query","texts"} -> [{"index","score"}] by score
    GET  /metrics                           Prometheus text counters
    GET|DELETE /_osrerank/received          texts received (only with record=True; for tests)

Every route but /ping, /health and /metrics needs a SigV4 signature or the bearer token unless the
server runs open (see auth.py). One error body everywhere: ``{"error": str, "error_type": str}``; its
status comes from ``STATUS``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..model import Activation, PairScorer, activate
from .auth import PUBLIC_PATHS, Auth, AuthMiddleware
from .batcher import DynamicBatcher

__all__ = ["STATUS", "ServerError", "create_app"]

log = logging.getLogger("osrerank.server")

STATUS = {"empty": 400, "validation": 400, "too_large": 413, "authentication": 403, "backend": 424}
MAX_BODY = 16 * 1024 * 1024
MAX_PAIRS = 1024


class ServerError(Exception):
    """A request the server refuses; ``error_type`` picks the HTTP status from ``STATUS``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _error(exc: ServerError) -> JSONResponse:
    return JSONResponse({"error": str(exc), "error_type": exc.error_type}, STATUS[exc.error_type])


async def _read_json(request: Request) -> Any:
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
    except (UnicodeDecodeError, ValueError) as exc:
        raise ServerError("validation", f"request body is not valid JSON: {exc}") from None


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ServerError("validation", f"{where} must be a string, got {type(value).__name__}")
    return value


def _pairs_from_inputs(payload: Any, default_activation: Activation) -> tuple[list[tuple[str, str]], bool, Activation]:
    """Parse the HF text-classification body: {"inputs": [{"text","text_pair"}...], "parameters"?}.

    A bare list, or a single {"text","text_pair"} object, is accepted too, as the HF container does.
    Returns the pairs, whether truncation was requested, and the activation: the pipeline's
    ``function_to_apply`` ("sigmoid" or "none") when sent, else the server's default.
    """
    truncation, activation = False, default_activation
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
    if len(items) > MAX_PAIRS:
        raise ServerError("validation", f"{len(items)} pairs in one request; the maximum is {MAX_PAIRS}")
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "text" not in item or "text_pair" not in item:
            raise ServerError("validation", f'inputs[{i}] must be an object with "text" and "text_pair"')
        pairs.append((_string(item["text"], f"inputs[{i}].text"), _string(item["text_pair"], f"inputs[{i}].text_pair")))
    return pairs, truncation, activation


class StandIn:
    """Request handlers bound to one scorer, batcher and set of counters."""

    def __init__(
        self, scorer: PairScorer, activation: Activation, record: bool, max_pairs: int, max_wait_s: float
    ) -> None:
        self.scorer, self.activation = scorer, activation
        self.batcher = DynamicBatcher(scorer, max_pairs=max_pairs, max_wait_s=max_wait_s)
        self.received: deque[dict[str, Any]] | None = deque(maxlen=2000) if record else None
        self.http_requests: dict[tuple[str, int], int] = {}
        self.rejected: dict[str, int] = {}
        self.latency_sum = 0.0

    def count_rejection(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    async def _score(
        self, route: str, pairs: Sequence[tuple[str, str]], truncation: bool, activation: Activation
    ) -> np.ndarray:
        if self.received is not None:
            self.received.append({"route": route, "pairs": [list(p) for p in pairs]})
        scores = await self.batcher.score(pairs)
        if not truncation and scores.truncated.any():
            i = int(np.argmax(scores.truncated))
            n = self.scorer.count_tokens([pairs[i]])[0]
            raise ServerError(
                "validation",
                f"input pair {i} is longer than the model's maximum of {self.scorer.max_length} tokens "
                f'(truncated to {n}); send "parameters": {{"truncation": true}} to truncate',
            )
        values = scores.values if self.scorer.kind == "bi-encoder" else activate(scores.values, activation)
        if not np.all(np.isfinite(values)):
            raise ServerError("backend", "the model produced a non-finite score")
        return values

    async def sagemaker(self, request: Request) -> Response:
        pairs, truncation, activation = _pairs_from_inputs(await _read_json(request), self.activation)
        values = await self._score("sagemaker", pairs, truncation, activation)
        return JSONResponse([{"label": self.scorer.label, "score": float(v)} for v in values])

    async def torchserve(self, request: Request) -> Response:
        pairs, _, activation = _pairs_from_inputs(await _read_json(request), self.activation)
        values = await self._score("torchserve", pairs, True, activation)
        return JSONResponse([float(v) for v in values])

    async def rerank(self, request: Request) -> Response:
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise ServerError("validation", 'body must be an object {"query": ..., "texts": [...]}')
        query = _string(body.get("query"), "query")
        texts = body.get("texts")
        if not isinstance(texts, list):
            raise ServerError("validation", '"texts" must be a list of strings')
        if not texts:
            raise ServerError("empty", "`texts` cannot be empty")
        docs = [_string(t, f"texts[{i}]") for i, t in enumerate(texts)]
        raw = bool(body.get("raw_scores", False))
        values = await self._score(
            "rerank", [(query, d) for d in docs], bool(body.get("truncate", False)), "none" if raw else "sigmoid"
        )
        order = sorted(range(len(docs)), key=lambda i: -values[i])
        ranks = [{"index": i, "score": float(values[i])} for i in order]
        if body.get("return_text"):
            for r in ranks:
                r["text"] = docs[r["index"]]
        return JSONResponse(ranks)

    async def ping(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        s = self.batcher.stats
        lines = [
            f"osrerank_pairs_total {s.pairs}",
            f"osrerank_scoring_requests_total {s.requests}",
            f"osrerank_batches_total {s.batches}",
            f"osrerank_batch_pairs_max {s.batch_pairs_max}",
            f"osrerank_inference_seconds_total {s.inference_seconds:.6f}",
            f"osrerank_request_seconds_total {self.latency_sum:.6f}",
        ]
        lines += [
            f'osrerank_http_requests_total{{route="{r}",status="{c}"}} {n}'
            for (r, c), n in sorted(self.http_requests.items())
        ]
        lines += [f'osrerank_rejected_total{{reason="{r}"}} {n}' for r, n in sorted(self.rejected.items())]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def received_texts(self, request: Request) -> Response:
        if self.received is None:
            raise ServerError("validation", "recording is off; start the server with record=True (--record)")
        if request.method == "DELETE":
            self.received.clear()
        return JSONResponse(list(self.received))


def create_app(
    scorer: PairScorer,
    *,
    activation: Activation = "sigmoid",
    auth: Auth | None = None,
    record: bool = False,
    max_pairs: int = 256,
    max_wait_s: float = 0.005,
) -> Any:
    """Build the ASGI app. With ``auth`` enabled, every route but /ping, /health and /metrics needs a valid
    SigV4 signature or the bearer token."""
    standin = StandIn(scorer, activation, record, max_pairs, max_wait_s)

    def handle(name: str, fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await fn(request)
            except ServerError as exc:
                response = _error(exc)
            except Exception as exc:  # a bug or model failure: answer, never hang
                log.exception("unexpected error on %s", name)
                response = _error(ServerError("backend", f"{type(exc).__name__}: {exc}"))
            elapsed = time.perf_counter() - started
            standin.latency_sum += elapsed
            key = (name, response.status_code)
            standin.http_requests[key] = standin.http_requests.get(key, 0) + 1
            if name not in ("ping", "metrics"):
                log.info(json.dumps({"route": name, "status": response.status_code, "ms": round(elapsed * 1000, 2)}))
            return response

        return endpoint

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        standin.batcher.start()
        yield
        await standin.batcher.close()

    routes = [
        Route("/ping", handle("ping", standin.ping)),
        Route("/health", handle("ping", standin.ping)),
        Route("/endpoints/{name}/invocations", handle("sagemaker", standin.sagemaker), methods=["POST"]),
        Route("/invocations", handle("sagemaker", standin.sagemaker), methods=["POST"]),
        Route("/predictions/{model}", handle("torchserve", standin.torchserve), methods=["POST"]),
        Route("/rerank", handle("rerank", standin.rerank), methods=["POST"]),
        Route("/metrics", handle("metrics", standin.metrics)),
        Route("/_osrerank/received", handle("received", standin.received_texts), methods=["GET", "DELETE"]),
    ]
    app: Any = Starlette(routes=routes, lifespan=lifespan)
    app.state.standin = standin
    if auth is not None and auth.enabled:
        public = PUBLIC_PATHS | ({"/_osrerank/received"} if record else set())  # recording is for tests only
        app = AuthMiddleware(app, auth, public=public, max_body=MAX_BODY, on_reject=standin.count_rejection)
    return app
