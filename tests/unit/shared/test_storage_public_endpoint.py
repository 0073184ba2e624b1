"""Presigned links are signed for the address clients use (compose: localhost), not the services' one."""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.settings import Settings
from shared.storage import S3Storage


def settings(**extra: str) -> Settings:
    return Settings(
        storage_backend="s3", s3_endpoint_url="http://minio:9000", s3_access_key_id="k",
        s3_secret_access_key="s", s3_bucket="videos", **extra,
    )  # fmt: skip


def test_links_are_signed_for_the_public_endpoint() -> None:
    link, _ = S3Storage(settings(s3_public_endpoint_url="http://localhost:9000")).url("videos/j.mp4")
    assert urlsplit(link).netloc == "localhost:9000"


def test_without_a_public_endpoint_links_use_the_services_endpoint() -> None:
    link, _ = S3Storage(settings()).url("videos/j.mp4")
    assert urlsplit(link).netloc == "minio:9000"
