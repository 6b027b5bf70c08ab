"""The OpenSearch connection: the ``cluster`` settings section, the opensearch-py client built from it, and the
translation of its errors.

Every request the kit sends goes through :meth:`Cluster.call` (or :meth:`Cluster.bulk`), the one
place where opensearch-py and connection errors become :class:`~osrerank.errors.OpenSearchError`:
``NotFound`` for 404, ``Conflict`` for 409, with the reason OpenSearch gave (``root_cause[0].reason``),
the method and the path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from opensearchpy import OpenSearch, RequestsHttpConnection
from opensearchpy.exceptions import ConnectionError as OsConnectionError
from opensearchpy.exceptions import ConnectionTimeout, OpenSearchException, TransportError
from opensearchpy.helpers import streaming_bulk
from pydantic import SecretStr

from .config.section import Section, setting
from .errors import ConfigError, Conflict, NotFound, OpenSearchError

__all__ = ["Cluster", "ClusterOptions", "connect"]

#: Seconds one bulk request may take (see Cluster.bulk).
BULK_TIMEOUT_S = 600


class ClusterOptions(Section):
    """Which cluster: a URL with its credentials, or the local one osrerank starts (its version and shape)."""

    shorthand = "url"

    url: str | None = setting(
        None, "Cluster URL [default: the local cluster osrerank starts].", flag="--opensearch-url"
    )
    user: str | None = setting(
        None, "Basic-auth user (password: OSRERANK_CLUSTER__PASSWORD).", flag="--opensearch-user"
    )
    password: SecretStr | None = setting(None, "Basic-auth password (variable or config only).", flag=None)
    verify_certs: bool = setting(True, "Verify the cluster's TLS certificate.")
    aws_region: str | None = setting(None, "Sign cluster requests with SigV4 (Amazon OpenSearch Service).")
    aws_profile: str | None = setting(None, "AWS profile for --aws-region and the AWS targets.")
    version: str | None = setting(
        None, "Version of the local cluster [default: 3.6.0; also 2.19.6].", flag="--opensearch-version"
    )
    nodes: int | None = setting(
        None, "Nodes of the local cluster: 1, or 3 (two data nodes, one ML node) [default: 1, or what runs].", ge=1
    )


STATUS_ERRORS: dict[int, type[OpenSearchError]] = {404: NotFound, 409: Conflict}


def _reason(exc: TransportError) -> str:
    """OpenSearch's reason: the root cause's, followed by what caused it (a script's "runtime error" says
    nothing until its cause, the exception the script threw, is added)."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if not isinstance(error, dict):
        return str(error or exc.error or exc)
    causes = error.get("root_cause") or [error]
    reason = str(causes[0].get("reason") or error.get("reason") or error)
    cause = error.get("caused_by") or causes[0].get("caused_by")
    while isinstance(cause, dict):
        if cause.get("reason") and cause["reason"] not in reason:
            reason += f": {cause['reason']}"
        cause = cause.get("caused_by")
    return reason


class Cluster:
    """A connected cluster: ``call`` for any REST request, ``bulk`` for indexing, a few shared helpers."""

    def __init__(self, client: OpenSearch, url: str) -> None:
        self.client, self.url = client, url
        self._version: tuple[int, int, int] | None = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; OpenSearch errors and unreachable clusters raise OpenSearchError."""
        if timeout is not None:
            params = {**(params or {}), "request_timeout": timeout}
        try:
            return self.client.transport.perform_request(method, path, body=body, params=params)
        except ConnectionTimeout as exc:
            raise OpenSearchError(f"{method} {path} timed out after {timeout or 'the client timeout'}s") from exc
        except OsConnectionError as exc:
            raise self._unreachable(exc) from exc
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else None
            error = STATUS_ERRORS.get(status or 0, OpenSearchError)
            raise error(f"{method} {path} failed ({status}): {_reason(exc)}", status=status) from exc

    def _unreachable(self, exc: OsConnectionError) -> OpenSearchError:
        return OpenSearchError(
            f"cannot reach OpenSearch at {self.url} ({exc.error}); check --opensearch-url, "
            "or start the local cluster with `osrerank cluster up`"
        )

    def exists(self, path: str) -> bool:
        """Whether a GET of ``path`` finds something."""
        try:
            self.call("GET", path)
            return True
        except NotFound:
            return False

    def find(self, path: str, query: dict[str, Any], size: int = 100) -> list[dict[str, Any]]:
        """Hits of a ``_search`` as ``{"id": ..., **source}``; none while its index does not exist yet."""
        try:
            hits = self.call("POST", path, {"query": query, "size": size})["hits"]["hits"]
        except OpenSearchError as exc:  # ml-commons creates its indices on first use
            if exc.status in (400, 404) and ("index_not_found" in str(exc) or "no such index" in str(exc)):
                return []
            raise
        return [{"id": h["_id"], **h["_source"]} for h in hits]

    @property
    def data_nodes(self) -> int:
        return int(self.call("GET", "/_cluster/health")["number_of_data_nodes"])

    @property
    def version(self) -> tuple[int, int, int]:
        if self._version is None:
            number = self.call("GET", "/")["version"]["number"]
            major, minor, patch = (int(x) for x in number.split("-")[0].split(".")[:3])
            self._version = (major, minor, patch)
        return self._version

    def bulk(self, actions: Iterable[dict[str, Any]], *, chunk_size: int = 500) -> Iterator[None]:
        """Index ``actions`` (opensearch-py bulk actions); yields once per indexed document. A rejected
        document stops the load with its reason. Each request may take ``BULK_TIMEOUT_S``: through an
        embedding ingest pipeline a chunk is 500 model inputs, which a loaded 2-core machine took over the
        client's default 60 s to embed."""
        try:
            chunks = streaming_bulk(
                self.client, actions, chunk_size=chunk_size, raise_on_error=False, request_timeout=BULK_TIMEOUT_S
            )
            for ok, item in chunks:
                if not ok:
                    result = next(iter(item.values()), {})
                    raise OpenSearchError(f"bulk indexing into {result.get('_index')} failed: {str(item)[:500]}")
                yield None
        except OsConnectionError as exc:
            raise self._unreachable(exc) from exc
        except OpenSearchException as exc:
            raise OpenSearchError(f"bulk indexing failed: {exc}") from exc


def connect(options: ClusterOptions, url: str | None = None) -> Cluster:
    """Build a client for ``url`` (or ``options.url``) with basic or AWS SigV4 auth."""
    url = url or options.url
    if not url:
        raise ConfigError("no cluster URL: pass --opensearch-url or use the local cluster")
    kwargs: dict[str, Any] = {
        "hosts": [url],
        "timeout": 60,
        "verify_certs": options.verify_certs,
        "ssl_show_warn": False,
    }
    if options.aws_region:
        kwargs.update(http_auth=_aws_auth(options), connection_class=RequestsHttpConnection)
    elif options.user:
        password = options.password.get_secret_value() if options.password else ""
        kwargs["http_auth"] = (options.user, password)
    return Cluster(OpenSearch(**kwargs), url)


def _aws_auth(options: ClusterOptions) -> Any:
    """SigV4 auth for Amazon OpenSearch Service, credentials from the normal AWS chain."""
    import botocore.session
    from opensearchpy import RequestsAWSV4SignerAuth

    session = botocore.session.Session(profile=options.aws_profile)
    credentials = session.get_credentials()
    if credentials is None:
        raise ConfigError(
            "no AWS credentials found for signing cluster requests: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "an --aws-profile, or run where an IAM role is available"
        )
    return RequestsAWSV4SignerAuth(credentials, options.aws_region, "es")
