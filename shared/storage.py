"""Where finished videos live: S3-compatible storage through boto3, or a local directory.

Both hand out links that expire; `url()` is called on every read, so a link is never handed out
already expired.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from shared.errors import StorageError
from shared.settings import Settings


class Storage(Protocol):
    def put_file(self, key: str, path: Path, content_type: str) -> int:
        """Upload and confirm; returns the stored size in bytes."""
        ...

    def url(self, key: str) -> tuple[str, datetime]:
        """A link to the object and when it expires."""
        ...


RESULT_PREFIXES = ("videos/", "batches/")


def video_key(job_id: str) -> str:
    """Deterministic per job, so a redelivered job overwrites rather than duplicates."""
    return f"videos/{job_id}.mp4"


def preview_key(job_id: str) -> str:
    """The growing preview of a running job: rewritten in place as frames are decoded."""
    return f"videos/{job_id}.preview.mp4"


class S3Storage:
    def __init__(self, settings: Settings) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = settings.s3_bucket
        self.expiry_s = settings.presign_expiry_s

        def client(endpoint_url: str | None) -> Any:
            return boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=settings.s3_region,
                aws_access_key_id=settings.s3_access_key_id,
                aws_secret_access_key=settings.s3_secret_access_key,
                # Short timeouts: a black-holed endpoint fails an attempt in seconds, and the worker's own
                # retry (REELFORGE_STORAGE_RETRY_S) decides how long to keep trying.
                config=Config(
                    signature_version="s3v4",
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=min(5.0, settings.s3_timeout_s),
                    read_timeout=settings.s3_timeout_s,
                ),
            )

        self.client = client(settings.s3_endpoint_url)
        # A presigned link signs its host: sign for the address clients use, which may differ.
        public = settings.s3_public_endpoint_url
        self.signer = client(public) if public else self.client
        self.transfer = TransferConfig(
            multipart_threshold=settings.s3_multipart_threshold_bytes,
            multipart_chunksize=max(settings.s3_multipart_threshold_bytes, 5 * 1024 * 1024),
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (compose's one-shot bucket step)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put_file(self, key: str, path: Path, content_type: str) -> int:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}, Config=self.transfer
            )
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise StorageError(f"upload of {key} to s3://{self.bucket} failed: {exc}") from exc
        size = int(head["ContentLength"])
        if size != path.stat().st_size:
            raise StorageError(f"upload of {key}: stored {size} bytes, expected {path.stat().st_size}")
        return size

    def apply_lifecycle(self, days: int) -> dict:
        """Expire results after `days` with the bucket's own lifecycle rule (S3 deletes them)."""
        rules = [
            {"ID": f"reelforge-{prefix.rstrip('/')}", "Filter": {"Prefix": prefix}, "Status": "Enabled",
             "Expiration": {"Days": days}}
            for prefix in RESULT_PREFIXES
        ]  # fmt: skip
        config = {"Rules": rules}
        self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration=config)
        return config

    def url(self, key: str) -> tuple[str, datetime]:
        expires = datetime.fromtimestamp(int(time.time()) + self.expiry_s, UTC)
        link = self.signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.expiry_s
        )
        return link, expires


class LocalStorage:
    """A directory served by the API at `/v1/files/{key}` through HMAC-signed, expiring links."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.storage_dir.resolve()
        self.base_url = settings.public_base_url.rstrip("/")
        self.secret = settings.signing_secret.encode()
        self.expiry_s = settings.presign_expiry_s

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root):
            raise StorageError(f"key {key!r} escapes the storage directory")
        return target

    def put_file(self, key: str, path: Path, content_type: str) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        shutil.copyfile(path, partial)
        partial.replace(target)  # atomic: readers never see half a file
        return target.stat().st_size

    def signature(self, key: str, expires: int) -> str:
        return hmac.new(self.secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, key: str) -> tuple[str, datetime]:
        expires = int(time.time()) + self.expiry_s
        query = urlencode({"expires": expires, "sig": self.signature(key, expires)})
        return f"{self.base_url}/v1/files/{quote(key)}?{query}", datetime.fromtimestamp(expires, UTC)

    def delete_older_than(self, days: float) -> int:
        """Retention for the local store: remove result files last written more than `days` ago."""
        cutoff = time.time() - days * 86400
        removed = 0
        for prefix in RESULT_PREFIXES:
            folder = self.root / prefix
            for path in folder.rglob("*") if folder.is_dir() else ():
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def verify(self, key: str, expires: int, sig: str) -> bool:
        return expires >= time.time() and hmac.compare_digest(sig, self.signature(key, expires))


def make_storage(settings: Settings) -> S3Storage | LocalStorage:
    return S3Storage(settings) if settings.storage_backend == "s3" else LocalStorage(settings)
