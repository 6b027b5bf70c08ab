"""Authentication for every scoring route of the stand-in: a SigV4 signature or a bearer token.

ml-commons signs SageMaker-style connectors with SigV4 (``aws_sigv4``) and sends HTTP connectors'
``Authorization: Bearer <token>`` header as given: the stand-in accepts whichever of the two it was
configured with, on every route but the public ones (``/ping``, ``/health``, ``/metrics``).
Rejections answer ``{"error", "error_type": "authentication"}`` with 403, are logged without any
secret, and are reported to ``on_reject`` so that ``/metrics`` counts them.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

from .sigv4 import SignatureError, SigV4Verifier

__all__ = ["PUBLIC_PATHS", "Auth", "AuthMiddleware", "json_reply", "services_for"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/ping", "/health", "/metrics"})
log = logging.getLogger("osrerank.server")


@dataclass(frozen=True)
class Auth:
    """What a request may authenticate with. Neither set means the server runs open (``--no-auth``)."""

    sigv4: SigV4Verifier | None = None
    bearer_token: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.sigv4 is not None or bool(self.bearer_token)

    def describe(self) -> str:
        kinds = [name for name, on in (("SigV4", self.sigv4), ("bearer token", self.bearer_token)) if on]
        return " or ".join(kinds) or "none (open)"

    def check_bearer(self, header: str) -> None:
        token = header[len("Bearer ") :].strip()
        if not self.bearer_token:
            raise SignatureError("this endpoint does not accept bearer tokens; sign the request with SigV4")
        if not hmac.compare_digest(token.encode(), self.bearer_token.encode()):
            raise SignatureError("the bearer token is not the one this endpoint was started with")


class AuthMiddleware:
    """Pure-ASGI middleware. A SigV4 request's body is read once (up to ``max_body``) to verify the
    signature over it, then replayed to the app unchanged; a bearer request is passed on as it is."""

    def __init__(
        self,
        app: ASGIApp,
        auth: Auth,
        *,
        public: frozenset[str] = PUBLIC_PATHS,
        max_body: int = 16 * 1024 * 1024,
        on_reject: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.app, self.auth, self.public, self.max_body, self.on_reject = app, auth, public, max_body, on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        authorization = next((v for k, v in headers if k.lower() == "authorization"), "")
        try:
            if not authorization:  # refused before reading a byte of the body
                raise SignatureError(
                    "missing Authorization header: sign the request with SigV4 or send 'Authorization: Bearer <token>'"
                )
            if authorization.startswith("Bearer "):
                self.auth.check_bearer(authorization)
                await self.app(scope, receive, send)
                return
            if self.auth.sigv4 is None:
                raise SignatureError("missing Authorization header: send 'Authorization: Bearer <token>'")
            body = await self._read_body(receive)
            if body is None:
                await self._reject(scope, send, 413, "too_large", f"request body larger than {self.max_body} bytes")
                return
            allowed = services_for(scope["path"])
            named = SCOPE_SERVICE.search(authorization)
            service = named[1] if named and named[1] in allowed else allowed[0]
            replace(self.auth.sigv4, service=service).verify(scope["method"], _url(scope, headers), headers, body)
        except SignatureError as exc:
            await self._reject(scope, send, 403, "authentication", str(exc))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _reject(self, scope: Scope, send: Send, status: int, error_type: str, message: str) -> None:
        self.on_reject(error_type)
        log.warning(json.dumps({"path": scope["path"], "status": status, "rejected": error_type, "reason": message}))
        await json_reply(send, status, {"error": message, "error_type": error_type})


SCOPE_SERVICE = re.compile(r"Credential=[^/,\s]+/[^/,\s]+/[^/,\s]+/([^/,\s]+)/")


def services_for(path: str) -> tuple[str, ...]:
    """The SigV4 services a path's real API is signed for (a refusal names the first): Bedrock's InvokeModel
    (``/model/{id}/invoke``) and Agent Runtime (``/rerank``, which is also TEI's path) are signed for
    ``bedrock``, SageMaker runtime for ``sagemaker``; any other path takes either, then routes or answers 404."""
    if path.startswith(("/model/", "/bedrock/")):
        return ("bedrock",)
    if path == "/rerank":
        return ("bedrock", "sagemaker")
    if path.startswith("/endpoints/") or path == "/invocations":
        return ("sagemaker",)
    return ("sagemaker", "bedrock")


def _url(scope: Scope, headers: list[tuple[str, str]]) -> str:
    host = next((v for k, v in headers if k.lower() == "host"), "localhost")
    raw_path = scope.get("raw_path") or scope["path"].encode()
    url = f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1')}"
    query = scope.get("query_string", b"")
    return url + ("?" + query.decode("latin-1") if query else "")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def json_reply(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
