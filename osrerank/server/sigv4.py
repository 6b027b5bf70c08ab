"""Verify AWS Signature Version 4 on incoming requests, the way SageMaker runtime does.

The expected signature is recomputed with botocore's own ``SigV4Auth`` steps (no hand-written
HMAC): the request is rebuilt with only the headers the client listed in ``SignedHeaders``, the
signing time is taken from the client's ``X-Amz-Date``, and the result is compared in constant
time. Separately from botocore we check what botocore trusts: that ``X-Amz-Content-SHA256`` (when
sent) matches the body, that the credential scope names our region and service, and that the
request is no older or newer than the allowed clock skew.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

__all__ = ["SigV4Verifier", "SignatureError"]

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)
MAX_SKEW_S = 15 * 60


class SignatureError(Exception):
    """The request is unsigned, signed with an unknown key, altered, stale, or for another scope."""


@dataclass(frozen=True)
class SigV4Verifier:
    """Accepts requests signed with one known key pair for ``service`` in ``region``."""

    access_key: str
    secret_key: str
    region: str
    service: str = "sagemaker"
    max_skew_s: int = MAX_SKEW_S
    #: ``X-Amz-Content-SHA256: UNSIGNED-PAYLOAD`` leaves the body out of the signature, so a captured
    #: signature would carry any body for the whole skew window: refused unless explicitly allowed.
    allow_unsigned_payload: bool = False

    def __repr__(self) -> str:  # never show the secret
        return f"SigV4Verifier(access_key={self.access_key!r}, region={self.region!r}, service={self.service!r})"

    def verify(
        self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes, now: datetime | None = None
    ) -> None:
        """Raise :class:`SignatureError` unless the request carries a valid signature."""
        header_map: dict[str, str] = {}
        for name, value in headers:
            header_map[name.lower()] = value
        auth = header_map.get("authorization")
        if not auth:
            raise SignatureError("missing Authorization header: the request is not SigV4-signed")
        m = AUTH_RE.match(auth.strip())
        if not m:
            raise SignatureError("Authorization header is not an AWS4-HMAC-SHA256 signature")
        try:
            key_id, date, region, service, terminal = m["cred"].split("/")
        except ValueError:
            raise SignatureError("malformed credential scope in Authorization header") from None
        if not hmac.compare_digest(key_id, self.access_key):
            raise SignatureError("the access key id is not known to this endpoint")
        if (region, service, terminal) != (self.region, self.service, "aws4_request"):
            raise SignatureError(
                f"credential scope {region}/{service} does not match this endpoint's {self.region}/{self.service}"
            )
        amz_date = header_map.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise SignatureError("missing or malformed X-Amz-Date header") from None
        if date != amz_date[:8]:
            raise SignatureError("credential scope date does not match X-Amz-Date")
        skew = abs(((now or datetime.now(UTC)) - signed_at).total_seconds())
        if skew > self.max_skew_s:
            raise SignatureError(f"signature expired: X-Amz-Date is {skew:.0f}s away from server time")
        signed = m["signed"].split(";")
        if "host" not in signed:
            raise SignatureError("the host header must be signed")
        missing = [h for h in signed if h not in header_map]
        if missing:
            raise SignatureError(f"signed header(s) missing from the request: {', '.join(missing)}")
        claimed_hash = header_map.get("x-amz-content-sha256")
        if claimed_hash == "UNSIGNED-PAYLOAD":
            if not self.allow_unsigned_payload:
                raise SignatureError(
                    "X-Amz-Content-SHA256: UNSIGNED-PAYLOAD is refused: the signature must cover the body"
                )
        elif claimed_hash and not hmac.compare_digest(claimed_hash, hashlib.sha256(body).hexdigest()):
            raise SignatureError("X-Amz-Content-SHA256 does not match the request body")
        request = AWSRequest(method=method, url=url, data=body, headers={h: header_map[h] for h in signed})
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key), self.service, self.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, m["sig"]):
            raise SignatureError("signature does not match: wrong secret key, or the request was altered")
