"""The S3 side of the team stack: moto's server on loopback for data files, or a real store.

Artifacts never go to moto: it keeps objects in memory, so a crash would lose
every artifact PostgreSQL points at. The server writes them to a folder of the
stack instead (``stack.Stack.artifacts``), or, with ``RUNWAY_TEAM_S3_ENDPOINT``,
to a bucket on that store (MinIO, AWS), created here when missing. moto stays
for ``runway score s3://...`` data files: a scratch store, emptied by every stop.
"""

from __future__ import annotations

import http.client
import sys
import urllib.request
from pathlib import Path
from typing import Any

from runway.errors import TeamError
from runway.team import procs

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
    """What a member's shell needs to read and write data files on the stack's moto."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": REGION,
    }


def ensure_bucket(endpoint: str, bucket: str) -> bool:
    """Create ``bucket`` on ``endpoint`` (boto3's credentials) when missing; True if created."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    s3: Any = boto3.client("s3", endpoint_url=endpoint)
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


def start_moto(host: str, port: int, log_file: Path, pidfile: Path, timeout: float) -> float:
    """Start moto's server; seconds until it answers."""
    endpoint = f"http://{host}:{port}"
    proc = procs.spawn(moto_command(host, port), log_file, pidfile)
    return procs.wait_ready("moto (S3)", proc, lambda: moto_ready(endpoint), timeout, log_file)
