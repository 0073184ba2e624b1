"""Signed links to the local store's files (embedded stack); S3 serves its own presigned links."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from scheduler.api.deps import ServicesDep
from shared.errors import NotFound, StorageError
from shared.storage import LocalStorage

router = APIRouter(tags=["files"])
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
}


@router.get("/v1/files/{key:path}", include_in_schema=False)
def download(key: str, expires: int, sig: str, services: ServicesDep) -> FileResponse:
    storage = services.storage
    if not isinstance(storage, LocalStorage) or not storage.verify(key, expires, sig):
        raise NotFound("link is invalid or expired")
    try:
        path = storage.path(key)
    except StorageError as exc:
        raise NotFound(f"{key} not found") from exc
    if not path.is_file():
        raise NotFound(f"{key} not found")
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        filename=path.name,  # Content-Disposition names the file; inline, so a browser plays it
        content_disposition_type="inline",
        headers={"X-Content-Type-Options": "nosniff"},
    )
