"""Signed links to the local store's files (embedded stack); S3 serves its own presigned links."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from scheduler.api.deps import ServicesDep
from shared.errors import NotFound
from shared.storage import LocalStorage

router = APIRouter(tags=["files"])


@router.get("/v1/files/{key:path}", include_in_schema=False)
def download(key: str, expires: int, sig: str, services: ServicesDep) -> FileResponse:
    storage = services.storage
    if not isinstance(storage, LocalStorage) or not storage.verify(key, expires, sig):
        raise NotFound("link is invalid or expired")
    path = storage.path(key)
    if not path.is_file():
        raise NotFound(f"{key} not found")
    return FileResponse(path, media_type="video/mp4" if key.endswith(".mp4") else None)
