"""botocore's exceptions as one-line AwsErrors, translated where AWS calls enter (the SageMaker target)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import AwsError

__all__ = ["aws_errors"]


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn botocore's exceptions into one-line AwsErrors that say what was being done and the likely fix."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        yield
    except NoCredentialsError as exc:
        raise AwsError(
            f"{doing}: no AWS credentials. Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an --aws-profile, "
            "or run where an IAM role is available"
        ) from exc
    except NoRegionError as exc:
        raise AwsError(f"{doing}: no AWS region; pass --region") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(f"{doing} failed: {error.get('Code', 'error')}: {error.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise AwsError(f"{doing} failed: {exc}") from exc
