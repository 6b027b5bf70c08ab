"""A local model folder (a trained one, say) as the ``model.tar.gz`` the SageMaker Hugging Face DLC loads.

The DLC runs ``pipeline("text-classification", model="/opt/ml/model")`` on PyTorch, so the archive holds
the folder's top-level files (config, weights, tokenizer) and leaves out what only osrerank reads (the ONNX
graph, the training report). Its S3 key carries a digest of those files, so the same folder uploads once
and a changed one makes a new key (and a new endpoint fingerprint).
"""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["S3_PREFIX", "digest", "is_local_folder", "pack", "remove", "upload"]

S3_PREFIX = "osrerank"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
LEFT_OUT = {"TRAINING.md", "training-loss.png", "reference_scores.json", "PROVENANCE.md", "SHA256SUMS.json"}


def is_local_folder(model: str) -> bool:
    return Path(model).expanduser().is_dir()


def _files(folder: Path) -> list[Path]:
    if not any((folder / w).exists() for w in WEIGHTS):
        raise ConfigError(
            f"{folder} has no PyTorch weights ({' or '.join(WEIGHTS)}): the SageMaker Hugging Face container "
            "runs PyTorch. Deploy a folder saved by transformers or sentence-transformers (osrerank train writes one)"
        )
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in LEFT_OUT)


@functools.lru_cache(maxsize=8)
def _digest(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    total = hashlib.sha256()
    for name, _, _ in stamp:
        total.update(name.encode() + b"\0" + hashlib.sha256((Path(folder) / name).read_bytes()).digest())
    return total.hexdigest()[:16]


def digest(folder: Path) -> str:
    """A digest of the files the archive holds (names and contents; computed once per unchanged folder)."""
    files = _files(folder)
    return _digest(str(folder), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))


def pack(folder: Path) -> bytes:
    """The folder's files at the archive's root, gzip level 1: float weights barely compress."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        for path in _files(folder):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def upload(session: Any, folder: Path, endpoint_name: str) -> str:
    """Upload the archive to the SageMaker session's default bucket (once per digest); returns its s3:// URI."""
    bucket = session.default_bucket()
    key = f"{S3_PREFIX}/{endpoint_name}/{digest(folder)}/model.tar.gz"
    s3 = session.boto_session.client("s3")
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        s3.put_object(Bucket=bucket, Key=key, Body=pack(folder))
    return f"s3://{bucket}/{key}"


def remove(boto_session: Any, endpoint_name: str, *, dry_run: bool) -> list[str]:
    """Delete every archive uploaded for this endpoint; returns what was (or would be) removed. Looks the
    default bucket up by name rather than through the SDK, which would create it."""
    account = boto_session.client("sts").get_caller_identity()["Account"]
    bucket = f"sagemaker-{boto_session.region_name}-{account}"
    s3 = boto_session.client("s3")
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{S3_PREFIX}/{endpoint_name}/").get("Contents", [])
    except s3.exceptions.NoSuchBucket:
        return []
    if not dry_run:
        for item in listed:
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    return [f"s3://{bucket}/{item['Key']}" for item in listed]
