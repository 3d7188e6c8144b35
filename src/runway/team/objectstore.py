"""The S3 side of the team stack: moto's server on loopback, or any S3 endpoint; the bucket.

moto keeps objects in memory only, so the stack saves the bucket to
``<dir>/s3`` when it stops and puts it back when it starts: runs and model
versions in PostgreSQL keep finding their artifacts across ``team down``/``up``.
A real S3 store (MinIO, AWS) persists on its own; then nothing is saved.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

from runway.errors import TeamError
from runway.team import procs

log = logging.getLogger(__name__)

MOTO_KEY = MOTO_SECRET = "testing"  # moto accepts any; these are its documented defaults
REGION = "us-east-1"


def moto_command(host: str, port: int) -> list[str]:
    """moto's S3 server (in memory) on ``host:port``."""
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


def moto_ready(endpoint: str) -> bool:
    """True when moto's management API answers."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as resp:
            return bool(resp.status == 200)
    except (OSError, http.client.HTTPException):  # e.g. a probe that met itself (self-connect)
        return False


def moto_env(endpoint: str) -> dict[str, str]:
    """The credentials and endpoint that reach the stack's moto."""
    return {
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


def client(endpoint: str, moto: bool) -> Any:
    """A boto3 client on ``endpoint`` (moto's credentials, or boto3's chain for a real store)."""
    import boto3

    if moto:
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_SECRET,
            region_name=REGION,
        )
    return boto3.client("s3", endpoint_url=endpoint or None)


def ensure_bucket(s3: Any, bucket: str) -> bool:
    """Create ``bucket`` when it is missing; True if it was created."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket in names:
            return False
        region = s3.meta.region_name
        extra = (
            {"CreateBucketConfiguration": {"LocationConstraint": region}}
            if region and region != REGION
            else {}
        )
        s3.create_bucket(Bucket=bucket, **extra)
    except (BotoCoreError, ClientError) as exc:
        raise TeamError(f"S3 bucket {bucket!r}: {exc}") from exc
    return True


def save(s3: Any, bucket: str, folder: Path) -> int:
    """Copy every object of ``bucket`` under ``folder`` (replacing it); the object count."""
    staging = folder.with_name(folder.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            target = staging / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
            count += 1
    staging.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return count


def restore(s3: Any, bucket: str, folder: Path) -> int:
    """Upload what :func:`save` wrote back into ``bucket``; the object count."""
    if not folder.is_dir():
        return 0
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, path.relative_to(folder).as_posix())
        count += 1
    return count


def start_moto(host: str, port: int, log_file: Path, pidfile: Path, timeout: float) -> float:
    """Start moto's server; seconds until it answers."""
    endpoint = f"http://{host}:{port}"
    proc = procs.spawn(moto_command(host, port), log_file, pidfile)
    return procs.wait_ready("moto (S3)", proc, lambda: moto_ready(endpoint), timeout, log_file)
